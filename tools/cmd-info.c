/* cmd-info.c - qcowkit info: describe an image (qemu-img info). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* One image of the chain, as qemu-img info reports it. */
struct image_desc {
    char *filename; /* as QEMU names it */
    char *path;     /* the image file */
    struct qcowkit_info info;
    uint64_t virtual_size;
    bool have_actual;
    uint64_t actual_size;
    char *full_backing; /* NULL without a backing file */
};

static void free_desc(struct image_desc *d)
{
    free(d->filename);
    free(d->path);
    free(d->full_backing);
}

/* spec: the image as named on the command line; NULL for a backing file. */
static int describe(const char *path, enum qcowkit_format format,
                    const struct cli_image_spec *spec, unsigned open_flags,
                    struct image_desc *d)
{
    struct cli_image_spec plain;
    struct qcowkit_image *img;
    struct stat st;
    int err;

    memset(d, 0, sizeof *d);
    if (!spec) {
        memset(&plain, 0, sizeof plain);
        plain.arg = (char *)path;
        plain.filename = (char *)path;
        plain.format = format;
        spec = &plain;
    }
    err = cli_open_spec(spec, open_flags | QCOWKIT_OPEN_NO_BACKING,
                        QCOWKIT_FORMAT_AUTO, CLI_OPEN_NO_KEY, &img);
    if (err < 0)
        return err;
    err = cli_get_info(img, &d->info);
    qcowkit_close(img);
    if (err < 0) {
        cli_lib_error(err, NULL);
        return err;
    }
    /* QEMU names an image opened with a key secret json:{...}. */
    d->filename = cli_image_spec_name(spec, d->info.format);
    d->path = strdup(path);
    d->virtual_size = d->info.virtual_size;
    /* QEMU sees raw files in whole sectors. */
    if (d->info.format == QCOWKIT_FORMAT_RAW)
        d->virtual_size = (d->virtual_size + 511) & ~UINT64_C(511);
    if (stat(path, &st) == 0) {
        d->have_actual = true;
        d->actual_size = (uint64_t)st.st_blocks * 512;
    }
    if (d->info.backing_file[0])
        d->full_backing = cli_backing_path(path, d->info.backing_file);
    if (!d->filename || !d->path ||
        (d->info.backing_file[0] && !d->full_backing)) {
        cli_error("out of memory");
        free_desc(d);
        return -ENOMEM;
    }
    return 0;
}

static void print_human(const struct image_desc *d)
{
    char buf[64];

    printf("image: %s\n", d->filename);
    printf("file format: %s\n", cli_format_name(d->info.format));
    cli_size_to_str(d->virtual_size, buf, sizeof buf);
    printf("virtual size: %s (%llu bytes)\n", buf,
           (unsigned long long)d->virtual_size);
    if (d->have_actual) {
        cli_size_to_str(d->actual_size, buf, sizeof buf);
        printf("disk size: %s\n", buf);
    } else {
        printf("disk size: unavailable\n");
    }
    if (d->info.crypt_method)
        printf("encrypted: yes\n");
    if (d->info.cluster_size)
        printf("cluster_size: %u\n", (unsigned)d->info.cluster_size);
    if (d->full_backing) {
        printf("backing file: %s", d->info.backing_file);
        if (strcmp(d->full_backing, d->info.backing_file) != 0)
            printf(" (actual path: %s)", d->full_backing);
        printf("\n");
    }
}

/* The keys in the order qemu-img 7.2 prints them for qcow and raw. */
static void print_json(const struct image_desc *d, const char *indent)
{
    printf("%s{\n", indent);
    printf("%s    \"virtual-size\": %llu,\n", indent,
           (unsigned long long)d->virtual_size);
    printf("%s    \"filename\": ", indent);
    cli_json_string(stdout, d->filename);
    printf(",\n");
    if (d->info.cluster_size)
        printf("%s    \"cluster-size\": %u,\n", indent,
               (unsigned)d->info.cluster_size);
    printf("%s    \"format\": \"%s\",\n", indent,
           cli_format_name(d->info.format));
    if (d->have_actual)
        printf("%s    \"actual-size\": %llu,\n", indent,
               (unsigned long long)d->actual_size);
    if (d->full_backing) {
        printf("%s    \"full-backing-filename\": ", indent);
        cli_json_string(stdout, d->full_backing);
        printf(",\n");
    }
    if (d->info.crypt_method)
        printf("%s    \"encrypted\": true,\n", indent);
    if (d->full_backing) {
        printf("%s    \"backing-filename\": ", indent);
        cli_json_string(stdout, d->info.backing_file);
        printf(",\n");
    }
    printf("%s    \"dirty-flag\": false\n", indent);
    printf("%s}", indent);
}

/* Has the chain come back to a file seen before (descs[0..n-1])? */
static bool chain_loops(const struct image_desc *descs, size_t n,
                        const char *next)
{
    struct stat st_new, st_old;

    if (stat(next, &st_new) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (stat(descs[i].path, &st_old) == 0 &&
            st_old.st_dev == st_new.st_dev && st_old.st_ino == st_new.st_ino)
            return true;
    return false;
}

static void print_descs(const struct image_desc *descs, size_t n, bool json,
                        bool chain)
{
    size_t i;

    if (json && chain) {
        printf("[\n");
        for (i = 0; i < n; i++) {
            print_json(&descs[i], "    ");
            printf(i + 1 < n ? ",\n" : "\n");
        }
        printf("]\n");
    } else if (json) {
        print_json(&descs[0], "");
        printf("\n");
    } else {
        for (i = 0; i < n; i++) {
            if (i)
                printf("\n");
            print_human(&descs[i]);
        }
    }
}

int cmd_info(int argc, char **argv)
{
    enum { OPT_CHAIN = 256 };
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_FORMAT,
        CLI_LONGOPT_OUTPUT,
        {"backing-chain", no_argument, NULL, OPT_CHAIN},
        CLI_LONGOPT_FORCE_SHARE,
        CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_OBJECT,
        {NULL, 0, NULL, 0},
    };
    struct cli_common co;
    enum qcowkit_format format;
    struct cli_image_spec spec;
    unsigned open_flags = QCOWKIT_OPEN_RDONLY;
    bool chain = false, json;
    struct image_desc *descs = NULL;
    size_t n = 0, i;
    char *path;
    int c, ret = 1;

    cli_common_init(&co, "info");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:hU", longopts, NULL)) != -1) {
        if (c == OPT_CHAIN)
            chain = true;
        else if ((ret = cli_common_option(&co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    ret = 1;
    if (co.force_share)
        open_flags |= QCOWKIT_OPEN_FORCE_SHARE;
    if (optind != argc - 1)
        return cli_usage_error("info", "Expecting one image file name");
    if (cli_parse_output(co.output, &json) < 0)
        return 1;
    if (cli_parse_format(co.fmt, &format) < 0)
        return 1;
    if (cli_image_spec_parse(argv[optind], co.image_opts, format, &spec) < 0)
        return 1;

    path = strdup(spec.filename);
    while (path) {
        struct image_desc *grown;

        grown = realloc(descs, (n + 1) * sizeof *descs);
        if (!grown) {
            cli_error("out of memory");
            goto out;
        }
        descs = grown;
        if (describe(path, format, n == 0 ? &spec : NULL, open_flags,
                     &descs[n]) < 0)
            goto out;
        n++;
        free(path);
        path = NULL;
        if (!chain || !descs[n - 1].full_backing)
            break;
        /* A loop in the chain: the same file seen before. */
        if (chain_loops(descs, n, descs[n - 1].full_backing)) {
            cli_error("Backing file '%s' creates an infinite loop.",
                      descs[n - 1].full_backing);
            goto out;
        }
        path = strdup(descs[n - 1].full_backing);
        format = QCOWKIT_FORMAT_AUTO;
    }
    if (n == 0) {
        cli_error("out of memory");
        goto out;
    }
    print_descs(descs, n, json, chain);
    ret = 0;
out:
    cli_image_spec_free(&spec);
    free(path);
    for (i = 0; i < n; i++)
        free_desc(&descs[i]);
    free(descs);
    return ret;
}
