/* cmd-check.c - qcowkit check: check an image's tables (qemu-img check).
 *
 * Output and exit codes as qemu-img check: 0 no problems, 1 the check
 * could not run (or failed), 2 corruptions, 3 leaks only, 63 the format
 * has no checks (raw).  Each problem the library reports goes to stderr
 * on its own line, as qemu's drivers print theirs ("ERROR ...",
 * "Leaked clusters ..."), also with -q. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

/* qemu-img's exit code for "This image format does not support checks". */
#define EXIT_NO_CHECKS 63

struct check_result {
    struct qcowkit_check_report r;
    uint64_t check_errors; /* the library has none; always 0 */
};

static void report_problem(void *opaque, const char *message)
{
    (void)opaque;
    fflush(stdout);
    fprintf(stderr, "%s\n", message);
}

static int run_check(struct qcowkit_image *img, unsigned flags, bool verbose,
                     struct check_result *res)
{
    memset(res, 0, sizeof *res);
    res->r.struct_size = sizeof res->r;
    return qcowkit_check(img, flags, verbose ? report_problem : NULL, NULL,
                         &res->r);
}

/* dump_human_image_check() of qemu-img. */
static void print_human(const struct check_result *res)
{
    const struct qcowkit_check_report *r = &res->r;

    if (!(r->corruptions || r->leaks || res->check_errors)) {
        cli_qprintf("No errors were found on the image.\n");
    } else {
        if (r->corruptions)
            cli_qprintf("\n%" PRIu64 " errors were found on the image.\n"
                        "Data may be corrupted, or further writes to the image "
                        "may corrupt it.\n",
                        r->corruptions);
        if (r->leaks)
            cli_qprintf(
                "\n%" PRIu64 " leaked clusters were found on the image.\n"
                "This means waste of disk space, but no harm to data.\n",
                r->leaks);
        if (res->check_errors)
            cli_qprintf("\n%" PRIu64
                        " internal errors have occurred during the check.\n",
                        res->check_errors);
    }
    if (r->total_clusters != 0 && r->allocated_clusters != 0)
        cli_qprintf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% "
                    "fragmented, %0.2f%% compressed clusters\n",
                    r->allocated_clusters, r->total_clusters,
                    (double)r->allocated_clusters * 100.0 /
                        (double)r->total_clusters,
                    (double)r->fragmented_clusters * 100.0 /
                        (double)r->allocated_clusters,
                    (double)r->compressed_clusters * 100.0 /
                        (double)r->allocated_clusters);
    if (r->image_end_offset)
        cli_qprintf("Image end offset: %" PRIu64 "\n", r->image_end_offset);
}

static void json_field(bool *first, const char *key, uint64_t value)
{
    cli_qprintf("%s\n    \"%s\": %" PRIu64, *first ? "" : ",", key, value);
    *first = false;
}

/*
 * The ImageCheck object as qemu-img 7.2 prints it: optional members only
 * when non-zero, in the order of QEMU's QDict hash buckets.
 */
static void print_json(const struct check_result *res, const char *filename,
                       const char *format)
{
    const struct qcowkit_check_report *r = &res->r;
    bool first = true;

    if (cli_quiet)
        return;
    printf("{");
    if (r->image_end_offset)
        json_field(&first, "image-end-offset", r->image_end_offset);
    if (r->compressed_clusters)
        json_field(&first, "compressed-clusters", r->compressed_clusters);
    if (r->total_clusters)
        json_field(&first, "total-clusters", r->total_clusters);
    if (r->corruptions)
        json_field(&first, "corruptions", r->corruptions);
    if (r->corruptions_fixed)
        json_field(&first, "corruptions-fixed", r->corruptions_fixed);
    json_field(&first, "check-errors", res->check_errors);
    if (r->leaks)
        json_field(&first, "leaks", r->leaks);
    if (r->leaks_fixed)
        json_field(&first, "leaks-fixed", r->leaks_fixed);
    if (r->allocated_clusters)
        json_field(&first, "allocated-clusters", r->allocated_clusters);
    printf(",\n    \"filename\": ");
    cli_json_string(stdout, filename);
    printf(",\n    \"format\": ");
    cli_json_string(stdout, format);
    if (r->fragmented_clusters)
        json_field(&first, "fragmented-clusters", r->fragmented_clusters);
    printf("\n}\n");
}

static void check_failed(int err)
{
    const char *msg = qcowkit_errmsg();

    if (msg && *msg)
        cli_error("Check failed: %s", msg);
    else
        cli_error("Check failed: %s", strerror(err < 0 ? -err : err));
}

struct check_args {
    struct cli_common co;
    const char *path;
    unsigned repair; /* QCOWKIT_CHECK_REPAIR_* or 0 */
    bool json;
};

/* Returns CLI_NEXT_OPTION when the check is to run, else the exit code. */
static int parse_check_args(int argc, char **argv, struct check_args *a)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,        CLI_LONGOPT_FORMAT,
        CLI_LONGOPT_OUTPUT,      {"repair", required_argument, NULL, 'r'},
        CLI_LONGOPT_FORCE_SHARE, CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_OBJECT,      {NULL, 0, NULL, 0},
    };
    int c, ret;

    cli_common_init(&a->co, "check");
    a->repair = 0;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:hr:T:qU", longopts, NULL)) != -1) {
        if (c != 'r') {
            if ((ret = cli_common_option(&a->co, argv, c)) != CLI_NEXT_OPTION)
                return ret;
        } else if (strcmp(optarg, "leaks") == 0)
            a->repair = QCOWKIT_CHECK_REPAIR_LEAKS;
        else if (strcmp(optarg, "all") == 0)
            a->repair = QCOWKIT_CHECK_REPAIR_ALL;
        else
            return cli_usage_error("check",
                                   "Unknown option value for -r "
                                   "(expecting 'leaks' or 'all'): %s",
                                   optarg);
    }
    if (optind != argc - 1)
        return cli_usage_error("check", "Expecting one image file name");
    a->path = argv[optind];
    if (cli_parse_output(a->co.output, &a->json) < 0)
        return 1;
    return CLI_NEXT_OPTION;
}

/*
 * Check, repair as asked, check again after a repair.  *refused is set
 * when leaks were left alone because of corruptions.
 */
static int check_and_repair(struct qcowkit_image *img, unsigned repair,
                            bool json, struct check_result *res, bool *refused)
{
    int err = 0;

    /*
     * Leaks found next to corrupt tables cannot be trusted: a table the
     * check refuses to walk (say, one that overlaps a data cluster) makes
     * every cluster it points at look leaked, and giving those back would
     * destroy guest data.  So -r leaks repairs nothing while there are
     * corruptions (qemu-img would go ahead); -r all is the explicit,
     * riskier choice, as in qemu-img.
     */
    *refused = false;
    if (repair == QCOWKIT_CHECK_REPAIR_LEAKS) {
        err = run_check(img, 0, false, res);
        if (err == 0 && res->r.corruptions) {
            *refused = true;
            repair = 0;
        }
    }
    if (err == 0)
        err = run_check(img, repair, true, res);
    if (err == 0 && (res->r.corruptions_fixed || res->r.leaks_fixed)) {
        uint64_t corruptions_fixed = res->r.corruptions_fixed;
        uint64_t leaks_fixed = res->r.leaks_fixed;

        if (!json)
            cli_qprintf("The following inconsistencies were found and "
                        "repaired:\n\n"
                        "    %" PRIu64 " leaked clusters\n"
                        "    %" PRIu64 " corruptions\n\n"
                        "Double checking the fixed image now...\n",
                        leaks_fixed, corruptions_fixed);
        err = run_check(img, 0, true, res);
        res->r.corruptions_fixed = corruptions_fixed;
        res->r.leaks_fixed = leaks_fixed;
    }
    return err;
}

/* Print the result and give qemu-img's exit code. */
static int report_check(int err, const struct check_result *res, bool refused,
                        const struct check_args *a,
                        const struct qcowkit_info *info)
{
    if (err == -ENOTSUP) {
        cli_error("This image format does not support checks");
        return EXIT_NO_CHECKS;
    }
    if (err == 0) {
        if (a->json)
            print_json(res, a->path, cli_format_name(info->format));
        else
            print_human(res);
    }
    fflush(stdout);
    if (err < 0 || res->check_errors) {
        if (err < 0)
            check_failed(err);
        else
            cli_error("Check failed");
        return 1;
    }
    if (refused)
        cli_error("Leaks were not repaired: with corrupt tables, clusters "
                  "that look leaked may still hold data (-r all clears the "
                  "corrupt entries first)");
    if (res->r.corruptions)
        return 2;
    return res->r.leaks ? 3 : 0;
}

int cmd_check(int argc, char **argv)
{
    struct check_args a;
    enum qcowkit_format format;
    struct qcowkit_image *img = NULL;
    struct qcowkit_info info;
    struct check_result res;
    unsigned open_flags;
    bool refused = false;
    int err, ret;

    cli_quiet = false;
    ret = parse_check_args(argc, argv, &a);
    if (ret != CLI_NEXT_OPTION)
        return ret;
    cli_quiet = a.co.quiet;
    if (cli_parse_format(a.co.fmt, &format) < 0)
        return 1;

    /* The check reads this file only: no backing chain.  -U with -r is
     * refused by the library, as QEMU refuses force-share for writing. */
    open_flags = QCOWKIT_OPEN_NO_BACKING |
                 (a.repair ? QCOWKIT_OPEN_RDWR : QCOWKIT_OPEN_RDONLY) |
                 (a.co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0);
    /* The check reads no data: a key is looked up if given, not needed. */
    if (cli_open_image(a.path, a.co.image_opts, format, open_flags,
                       QCOWKIT_FORMAT_AUTO, 0, &img, NULL) < 0)
        return 1;
    ret = 1;
    err = cli_get_info(img, &info);
    if (err < 0) {
        cli_lib_error(err, NULL);
    } else if (info.format != QCOWKIT_FORMAT_QCOW) {
        cli_error("This image format does not support checks");
        ret = EXIT_NO_CHECKS;
    } else {
        err = check_and_repair(img, a.repair, a.json, &res, &refused);
        ret = report_check(err, &res, refused, &a, &info);
    }
    err = qcowkit_close(img);
    if (err < 0 && ret != 1) {
        cli_lib_error(err, "Could not close the image");
        ret = 1;
    }
    return ret;
}
