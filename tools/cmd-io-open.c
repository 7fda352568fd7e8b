/* cmd-io-open.c - qcowkit io: opening the image (the command line or the
 * open command), close, and truncate. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-io.h"

/* qemu-io refuses these combinations before anything is opened. */
static int check_open_opts(const struct io_open_opts *o, const char *arg)
{
    const char *why = NULL;

    if (o->force_share && !o->read_only)
        why = "force-share=on can only be used with read-only images";
    else if (o->copy_on_read && o->read_only)
        why = "Can't use copy-on-read on read-only device";
    if (!why)
        return 0;
    if (o->image_opts)
        cli_error("can't open: %s", why);
    else
        cli_error("can't open device %s: %s", arg, why);
    return -1;
}

/* open -o OPTIONS FILE: the options with the file name, as --image-opts
 * would take them. */
static char *image_opts_arg(const struct io_open_opts *o, const char *arg)
{
    char *s = NULL;

    if (!o->options)
        return strdup(arg);
    if (asprintf(&s, "%s,file.filename=%s", o->options, arg) < 0)
        return NULL;
    return s;
}

static int open_spec(struct io_ctx *ctx, const struct io_open_opts *o,
                     enum qcowkit_format format, const char *arg)
{
    bool image_opts = o->image_opts || o->options;
    char *spec = image_opts_arg(o, arg);
    int ret;

    if (!spec) {
        cli_error("out of memory");
        return -1;
    }
    /* As qemu-io, an encrypted image opens only with its key.  A
     * read-only snapshot needs no overlay: nothing can be written. */
    if (o->snapshot && !o->read_only)
        ret = io_open_snapshot(spec, image_opts, format, &ctx->img,
                               &ctx->encrypted);
    else
        ret = cli_open_image(
            spec, image_opts, format,
            (o->read_only ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR) |
                (o->force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0),
            QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &ctx->img, NULL);
    free(spec);
    return ret < 0 ? -1 : 0;
}

/* Open the image as the options say; prints the error and returns -1. */
int io_open_image(struct io_ctx *ctx, const struct io_open_opts *o,
                  const char *arg)
{
    enum qcowkit_format format;
    struct qcowkit_info info;

    if (cli_parse_format(o->fmt, &format) < 0 || check_open_opts(o, arg) < 0)
        return -1;
    ctx->encrypted = false;
    if (open_spec(ctx, o, format, arg) < 0) {
        ctx->img = NULL;
        return -1;
    }
    ctx->read_only = o->read_only;
    ctx->copy_on_read = o->copy_on_read;
    ctx->raw = false;
    if (cli_get_info(ctx->img, &info) == 0) {
        ctx->encrypted = ctx->encrypted || info.crypt_method;
        ctx->raw = info.format == QCOWKIT_FORMAT_RAW;
    }
    return 0;
}

/* open's flags into o; 0, or -EINVAL after the message. */
static int parse_open_flags(int argc, char **argv, struct io_open_opts *o)
{
    int c;

    memset(o, 0, sizeof *o);
    optind = 0;
    opterr = 1;
    while ((c = getopt(argc, argv, "snCro:kt:d:Ui:")) != -1) {
        if (c == 's')
            o->snapshot = true;
        else if (c == 'C')
            o->copy_on_read = true;
        else if (c == 'r')
            o->read_only = true;
        else if (c == 'o')
            o->options = optarg;
        else if (c == 'U')
            o->force_share = true;
        else if (c == 't' && !cli_cache_mode_valid(optarg)) {
            printf("Invalid cache option: %s\n", optarg);
            return -EINVAL;
        } else if (c == '?') {
            io_usage(io_find_cmd("open"));
            return -EINVAL;
        }
        /* -n, -k, -t, -d, -i: host cache and AIO modes, only hints here */
    }
    return 0;
}

int open_f(struct io_ctx *ctx, int argc, char **argv)
{
    struct io_open_opts o;
    int ret = parse_open_flags(argc, argv, &o);

    if (ret < 0)
        return ret;
    if (ctx->img) {
        fflush(stdout);
        cli_error("file open already, try 'help close'");
        return -EBUSY;
    }
    if (optind != argc - 1) {
        io_usage(io_find_cmd("open"));
        return -EINVAL;
    }
    fflush(stdout);
    return io_open_image(ctx, &o, argv[optind]) < 0 ? -EINVAL : 0;
}

int close_f(struct io_ctx *ctx, int argc, char **argv)
{
    int ret = qcowkit_close(ctx->img);

    (void)argc;
    (void)argv;
    ctx->img = NULL;
    if (ret < 0) {
        fflush(stdout);
        cli_lib_error(ret, NULL);
    }
    return ret;
}

/* The preallocation modes QEMU names; only "off" is done here. */
static int check_prealloc(const char *mode)
{
    enum cli_prealloc m = cli_parse_prealloc(mode);

    if (m == CLI_PREALLOC_OFF)
        return 0;
    if (m != CLI_PREALLOC_UNKNOWN) {
        cli_error("Unsupported preallocation mode '%s'", mode);
        return -ENOTSUP;
    }
    cli_error("Invalid preallocation mode '%s'", mode);
    return -EINVAL;
}

int truncate_f(struct io_ctx *ctx, int argc, char **argv)
{
    const char *mode = "off";
    int64_t size;
    int c, ret;

    optind = 0;
    opterr = 1;
    while ((c = getopt(argc, argv, "m:")) != -1) {
        if (c == 'm')
            mode = optarg;
        else {
            io_usage(io_find_cmd("truncate"));
            return -EINVAL;
        }
    }
    if (optind != argc - 1) {
        io_usage(io_find_cmd("truncate"));
        return -EINVAL;
    }
    size = io_cvtnum(argv[optind]);
    if (size < 0) {
        io_print_cvtnum_err(size, argv[optind]);
        return -EINVAL;
    }
    fflush(stdout);
    ret = check_prealloc(mode);
    if (ret == 0 && ctx->read_only) {
        cli_error("Block node is read-only");
        ret = -EACCES;
    }
    if (ret == 0 && (ret = qcowkit_resize(ctx->img, (uint64_t)size)) < 0)
        cli_error("%s", strerror(-ret));
    return ret;
}
