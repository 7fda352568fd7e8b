/* cmd-create.c - qcowkit create: a new qcow or raw image (qemu-img create). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct create_args {
    const char *file;
    enum qcowkit_format format;
    bool have_size;
    uint64_t size;
    struct cli_qcow_opts q;
    bool help;
};

static void print_create_options(enum qcowkit_format format)
{
    printf("Supported options:\n");
    if (format == QCOWKIT_FORMAT_QCOW) {
        printf("  backing_file=<str>     - File name of a base image\n"
               "  backing_fmt=<str>      - Image format of the base image\n"
               "  cluster_size=<size>    - qcow cluster size (512..65536, "
               "a power of two; qcowkit extension)\n"
               "  encrypt.format=<str>   - Encrypt the image, format choices: "
               "'aes'\n"
               "  encrypt.key-secret=<str> - ID of the secret that provides "
               "the AES encryption key\n"
               "  encryption=<bool (on/off)> - Encrypt the image with format "
               "'aes'. (Deprecated in favor of encrypt.format=aes)\n");
    }
    printf("  size=<size>            - Virtual disk size\n");
}

static int create_option(void *ctx, const char *key, const char *value)
{
    struct create_args *a = ctx;
    uint64_t v;
    const char *why;

    if (strcmp(key, "help") == 0 || strcmp(key, "?") == 0) {
        a->help = true;
        return 0;
    }
    if (!value) {
        cli_error("Invalid parameter '%s': expected %s=VALUE", key, key);
        return -1;
    }
    if (strcmp(key, "size") == 0) {
        if (cli_parse_size(value, INT64_MAX, &v, &why) < 0) {
            cli_error("Invalid size '%s' for parameter 'size': %s", value, why);
            return -1;
        }
        a->size = v;
        a->have_size = true;
        return 0;
    }
    if (a->format == QCOWKIT_FORMAT_QCOW) {
        int taken = cli_qcow_option(&a->q, key, value);
        if (taken != 0)
            return taken < 0 ? -1 : 0;
    }
    cli_error("Invalid parameter '%s'", key);
    return -1;
}

/* A backend that stores nothing, for a dry run of qcowkit_create_io(). */
static int null_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    (void)opaque;
    (void)offset;
    memset(buf, 0, count);
    return 0;
}

static int null_pwrite(void *opaque, const void *buf, size_t count,
                       uint64_t offset)
{
    (void)opaque;
    (void)buf;
    (void)count;
    (void)offset;
    return 0;
}

static int null_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int null_get_size(void *opaque, uint64_t *size)
{
    (void)opaque;
    *size = 0;
    return 0;
}

static int null_truncate(void *opaque, uint64_t size)
{
    (void)opaque;
    (void)size;
    return 0;
}

/*
 * qcowkit_create() empties an existing file before it checks the options,
 * so a refused create (size 0, too large, ...) would destroy the file it
 * was pointed at.  Check them on a backend that stores nothing first.
 */
static int dry_run(const char *path, const struct qcowkit_create_opts *co)
{
    static const struct qcowkit_io_ops null_ops = {
        .struct_size = sizeof null_ops,
        .pread = null_pread,
        .pwrite = null_pwrite,
        .flush = null_flush,
        .get_size = null_get_size,
        .truncate = null_truncate,
    };
    struct qcowkit_io *io;
    int err = qcowkit_io_new(&null_ops, NULL, path, &io);

    if (err == 0)
        err = qcowkit_create_io(io, path, co);
    qcowkit_io_close(io);
    if (err < 0)
        cli_lib_error(err, NULL);
    return err;
}

/*
 * Check the backing file as qemu-img does: it must open in the given
 * format, and it supplies the size when none was given.
 */
static int check_backing(struct create_args *a, bool unsafe)
{
    enum qcowkit_format bfmt;
    struct qcowkit_image *b;
    struct qcowkit_open_opts o;
    char *path;
    int err;

    if (strcmp(a->file, a->q.backing_file) == 0) {
        cli_error("%s: Error: Trying to create an image with the same "
                  "filename as the backing file",
                  a->file);
        return -1;
    }
    if (cli_parse_format(a->q.backing_fmt, &bfmt) < 0)
        return -1;
    if (unsafe) {
        if (!a->q.backing_fmt) {
            cli_error("%s: Backing file specified without backing format",
                      a->file);
            return -1;
        }
        return 0;
    }
    path = cli_backing_path(a->file, a->q.backing_file);
    if (!path) {
        cli_error("out of memory");
        return -1;
    }
    qcowkit_open_opts_init(&o);
    o.format = bfmt;
    o.flags = QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING;
    err = qcowkit_open(path, &o, &b);
    free(path);
    if (err < 0) {
        cli_lib_error(err, a->file);
        return -1;
    }
    if (!a->q.backing_fmt) {
        struct qcowkit_info info;
        if (cli_get_info(b, &info) == 0)
            cli_error("%s: Backing file specified without backing format "
                      "(detected format of %s)",
                      a->file, cli_format_name(info.format));
        else
            cli_error("%s: Backing file specified without backing format",
                      a->file);
        qcowkit_close(b);
        return -1;
    }
    if (!a->have_size) {
        a->size = cli_image_size(b);
        a->have_size = true;
    }
    qcowkit_close(b);
    return 0;
}

int cmd_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, 'O'},
        {NULL, 0, NULL, 0},
    };
    struct create_args a;
    struct qcowkit_create_opts co;
    const char *fmt = "raw", *opt_b = NULL, *opt_F = NULL;
    const uint8_t *key = NULL;
    size_t key_len = 0;
    bool quiet = false, unsafe = false;
    int c, err, ret = 1;

    memset(&a, 0, sizeof a);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'b':
            opt_b = optarg;
            break;
        case 'F':
            opt_F = optarg;
            break;
        case 'o':
            /* Parsed once the format is known; several -o accumulate. */
            break;
        case 'q':
            quiet = true;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'h':
            printf("usage: %s %s\n", CLI_NAME, cli_usage("create"));
            return 0;
        case 'O':
            if (cli_object_add(optarg) < 0)
                return 1;
            break;
        default:
            return cli_bad_option("create", argv, c);
        }
    }
    if (cli_parse_format(fmt, &a.format) < 0)
        return 1;
    /* Second pass for -o, now that the format is known. */
    optind = 0;
    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) !=
           -1) {
        if (c == 'o' && cli_parse_opts(optarg, create_option, &a) < 0)
            goto out;
    }
    if (a.help) {
        print_create_options(a.format);
        ret = 0;
        goto out;
    }
    if (optind >= argc) {
        cli_usage_error("create", "Expecting image file name");
        goto out;
    }
    a.file = argv[optind++];
    if (optind < argc) {
        const char *why;
        if (cli_parse_size(argv[optind], INT64_MAX, &a.size, &why) < 0) {
            cli_error("Invalid image size specified: '%s': %s", argv[optind],
                      why);
            goto out;
        }
        a.have_size = true;
        optind++;
    }
    if (optind < argc) {
        cli_usage_error("create", "Unexpected argument: %s", argv[optind]);
        goto out;
    }
    if (opt_b && cli_set_string(&a.q.backing_file, opt_b) < 0)
        goto out;
    if (opt_F && cli_set_string(&a.q.backing_fmt, opt_F) < 0)
        goto out;
    if (a.format == QCOWKIT_FORMAT_RAW && a.q.backing_file) {
        cli_error("%s: Backing file not supported for file format 'raw'",
                  a.file);
        goto out;
    }
    if (a.q.backing_file && check_backing(&a, unsafe) < 0)
        goto out;
    if (!a.have_size) {
        cli_error("%s: Image creation needs a size parameter", a.file);
        goto out;
    }
    if (cli_create_key(a.file, a.q.encryption, a.q.encrypt_format,
                       a.q.key_secret, &key, &key_len) < 0)
        goto out;
    if (!quiet) {
        printf("Formatting '%s', fmt=%s size=%llu", a.file,
               cli_format_name(a.format), (unsigned long long)a.size);
        if (a.q.backing_file)
            printf(" backing_file=%s", a.q.backing_file);
        if (a.q.backing_fmt)
            printf(" backing_fmt=%s", a.q.backing_fmt);
        if (a.q.encryption)
            printf(" encryption=%s", a.q.encryption);
        if (a.q.encrypt_format)
            printf(" encrypt.format=%s", a.q.encrypt_format);
        if (a.q.key_secret)
            printf(" encrypt.key-secret=%s", a.q.key_secret);
        if (a.q.cluster_size)
            printf(" cluster_size=%u", (unsigned)a.q.cluster_size);
        printf("\n");
        fflush(stdout);
    }
    qcowkit_create_opts_init(&co);
    co.format = a.format;
    co.size = a.size;
    co.backing_file = a.q.backing_file;
    co.cluster_size = a.q.cluster_size;
    co.key = key;
    co.key_len = key_len;
    if (key)
        cli_warn_aes_create();
    if (dry_run(a.file, &co) < 0)
        goto out;
    err = qcowkit_create(a.file, &co, QCOWKIT_IO_TRUNC);
    if (err < 0) {
        cli_lib_error(err, NULL);
        goto out;
    }
    ret = 0;
out:
    cli_qcow_opts_free(&a.q);
    return ret;
}
