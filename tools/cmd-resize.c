/* cmd-resize.c - qcowkit resize: change the virtual size of an image
 * (qemu-img resize).  QEMU 7.2 cannot resize qcow images; qcowkit can. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct resize_args {
    struct cli_common co;
    const char *image, *prealloc;
    bool shrink;
    int relative; /* +1 grow by n, -1 shrink by n, 0 set to n */
    uint64_t n;
};

/* Check the preallocation mode and the size; returns 0 or -1. */
static int parse_resize_values(struct resize_args *a, const char *size_arg)
{
    const char *why = "";
    const char *prealloc = a->prealloc;
    enum cli_prealloc mode = cli_parse_prealloc(prealloc);

    if (mode != CLI_PREALLOC_OFF) {
        if (mode == CLI_PREALLOC_UNKNOWN) {
            cli_error("Invalid parameter '%s'", prealloc);
            return -1;
        }
        cli_error("Unsupported preallocation mode '%s' (qcowkit supports "
                  "only 'off')",
                  prealloc);
        return -1;
    }
    a->relative = 0;
    if (size_arg[0] == '+') {
        a->relative = 1;
        size_arg++;
    } else if (size_arg[0] == '-') {
        a->relative = -1;
        size_arg++;
    }
    if (cli_parse_size(size_arg, UINT64_MAX, &a->n, &why) < 0) {
        cli_error("Parameter 'size' expects a non-negative number below 2^64 "
                  "(optional suffix k, M, G, T, P or E)");
        return -1;
    }
    return 0;
}

/* Returns CLI_NEXT_OPTION when the resize is to run, else the exit code. */
static int parse_resize_args(int argc, char **argv, struct resize_args *a)
{
    enum { OPT_PREALLOCATION = 256, OPT_SHRINK };
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_OBJECT,
        CLI_LONGOPT_IMAGE_OPTS,
        {"preallocation", required_argument, NULL, OPT_PREALLOCATION},
        {"shrink", no_argument, NULL, OPT_SHRINK},
        {NULL, 0, NULL, 0},
    };
    const char *size_arg;
    int c, ret;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "resize");
    /* As qemu-img: the size is taken off the end before the options are
     * parsed, so that "-1G" is not taken for an option. */
    if (argc < 3) {
        cli_usage_error("resize", "Not enough arguments");
        return 1;
    }
    size_arg = argv[--argc];
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:hq", longopts, NULL)) != -1) {
        if (c == OPT_PREALLOCATION)
            a->prealloc = optarg;
        else if (c == OPT_SHRINK)
            a->shrink = true;
        else if ((ret = cli_common_option(&a->co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    if (optind != argc - 1)
        return cli_usage_error("resize", "Expecting image file name and size");
    a->image = argv[optind];
    return parse_resize_values(a, size_arg) < 0 ? 1 : CLI_NEXT_OPTION;
}

/* The new size from the current one, or 0 after printing why not. */
static uint64_t new_size(const struct resize_args *a,
                         const struct qcowkit_info *info)
{
    /* QEMU sees whole sectors: a raw file's length is rounded up. */
    uint64_t current = (info->virtual_size + 511) / 512 * 512, total;

    if (a->relative > 0)
        total = a->n > INT64_MAX - current ? UINT64_MAX : current + a->n;
    else if (a->relative < 0)
        total = a->n >= current ? 0 : current - a->n;
    else
        total = a->n;
    if (total == 0 || total > INT64_MAX) {
        cli_error(total ? "Image size must be less than 8 EiB!"
                        : "New image size must be positive");
        return 0;
    }
    if (total <= current && a->prealloc && strcmp(a->prealloc, "off") != 0) {
        cli_error("Preallocation can only be used for growing images");
        return 0;
    }
    if (total < current && !a->shrink) {
        cli_error("Use the --shrink option to perform a shrink operation.");
        fprintf(stderr,
                "%s: warning: Shrinking an image will delete all data beyond "
                "the shrunken image's end. Before performing such an "
                "operation, make sure there is no important data there.\n",
                CLI_NAME);
        return 0;
    }
    /* qemu-img resizes exactly; a qcow image's size is a multiple of 512. */
    if (info->format == QCOWKIT_FORMAT_QCOW && total % 512) {
        cli_error("The new size must be a multiple of 512");
        return 0;
    }
    return total;
}

static int resize_image(struct qcowkit_image *img, const struct resize_args *a)
{
    struct qcowkit_info info;
    uint64_t total;
    int err = cli_get_info(img, &info);

    if (err < 0) {
        cli_lib_error(err, a->image);
        return 1;
    }
    total = new_size(a, &info);
    if (total == 0)
        return 1;
    err = qcowkit_resize(img, total);
    if (err == 0)
        err = qcowkit_flush(img);
    if (err < 0) {
        cli_lib_error(err, NULL);
        return 1;
    }
    if (!a->co.quiet)
        printf("Image resized.\n");
    return 0;
}

int cmd_resize(int argc, char **argv)
{
    struct resize_args a;
    enum qcowkit_format format;
    struct qcowkit_image *img = NULL;
    int ret = parse_resize_args(argc, argv, &a);

    if (ret != CLI_NEXT_OPTION)
        return ret;
    if (cli_parse_format(a.co.fmt, &format) < 0)
        return 1;
    if (cli_open_image(a.image, a.co.image_opts, format, QCOWKIT_OPEN_RDWR,
                       QCOWKIT_FORMAT_AUTO, 0, &img, NULL) < 0)
        return 1;
    ret = resize_image(img, &a);
    if (qcowkit_close(img) < 0 && ret == 0) {
        cli_lib_error(-EIO, a.image);
        ret = 1;
    }
    return ret;
}
