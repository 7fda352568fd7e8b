/* cmd-dd.c - qcowkit dd: copy blocks of an image into a new one
 * (qemu-img dd), with qemu-img's operands and its sizing: count limits
 * the input read, skip included, so "skip=2 count=5" copies 3 blocks. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define C_BS    1u
#define C_COUNT 2u
#define C_IF    4u
#define C_OF    8u
#define C_SKIP  16u

struct dd_args {
    uint64_t bsz, count, skip;
    const char *in, *out;
    unsigned flags;
};

/* qemu-img's cvtnum_full(): a size with suffixes inside [min, max]. */
static int dd_number(const char *name, const char *value, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    const char *why;
    int err = cli_parse_size(value, UINT64_MAX, out, &why);

    if (err < 0 && err != -ERANGE) {
        cli_error("Invalid %s specified. You may use k, M, G, T, P or E "
                  "suffixes for",
                  name);
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and "
                  "exabytes.");
        return -1;
    }
    if (err == -ERANGE || *out > max || *out < min) {
        cli_error("Invalid %s specified. Must be between %" PRIu64
                  " and %" PRIu64 ".",
                  name, min, max);
        return -1;
    }
    return 0;
}

static int dd_operand(struct dd_args *a, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *value;
    size_t klen;

    if (!eq) {
        cli_error("unrecognized operand %s", arg);
        return -1;
    }
    klen = (size_t)(eq - arg);
    value = eq + 1;
#define IS(k) (klen == strlen(k) && strncmp(arg, k, klen) == 0)
    if (IS("bs")) {
        if (dd_number("bs", value, 1, INT32_MAX, &a->bsz) < 0)
            return -1;
        a->flags |= C_BS;
    } else if (IS("count")) {
        if (dd_number("count", value, 0, INT64_MAX, &a->count) < 0)
            return -1;
        a->flags |= C_COUNT;
    } else if (IS("skip")) {
        if (dd_number("skip", value, 0, INT64_MAX, &a->skip) < 0)
            return -1;
        a->flags |= C_SKIP;
    } else if (IS("if")) {
        a->in = value;
        a->flags |= C_IF;
    } else if (IS("of")) {
        a->out = value;
        a->flags |= C_OF;
    } else {
        cli_error("unrecognized operand %.*s", (int)klen, arg);
        return -1;
    }
#undef IS
    return 0;
}

int cmd_dd(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, OPT_OBJECT},
        {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
        {"force-share", no_argument, NULL, 'U'},
        {NULL, 0, NULL, 0},
    };
    struct dd_args a = {.bsz = 512};
    const char *fmt = NULL, *out_fmt = "raw";
    enum qcowkit_format format, out_format;
    struct qcowkit_image *in = NULL, *out = NULL;
    struct qcowkit_create_opts co;
    unsigned in_flags = QCOWKIT_OPEN_RDONLY;
    bool image_opts = false, skip_beyond;
    uint64_t size, in_pos, out_pos;
    uint8_t *buf = NULL;
    int c, err, ret = 1;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hf:O:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'U':
            in_flags |= QCOWKIT_OPEN_FORCE_SHARE;
            break;
        case 'h':
            printf("usage: %s %s\n", CLI_NAME, cli_usage("dd"));
            return 0;
        case OPT_OBJECT:
            if (cli_object_add(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        default:
            return cli_bad_option("dd", argv, c);
        }
    }
    for (int i = optind; i < argc; i++)
        if (dd_operand(&a, argv[i]) < 0)
            return 1;
    if (!(a.flags & C_IF) || !(a.flags & C_OF)) {
        cli_error("Must specify both input and output files");
        return 1;
    }
    if (cli_parse_format(fmt, &format) < 0)
        return 1;
    if (cli_open_image(a.in, image_opts, format, in_flags, QCOWKIT_FORMAT_AUTO,
                       CLI_OPEN_NEED_KEY, &in, NULL) < 0)
        return 1;
    if (strcmp(out_fmt, "qcow") == 0)
        out_format = QCOWKIT_FORMAT_QCOW;
    else if (strcmp(out_fmt, "raw") == 0)
        out_format = QCOWKIT_FORMAT_RAW;
    else {
        cli_error("Unknown file format");
        goto out;
    }

    size = cli_image_size(in);
    if ((a.flags & C_COUNT) && a.count <= INT64_MAX / a.bsz &&
        a.count * a.bsz < size)
        size = a.count * a.bsz;
    skip_beyond = (a.flags & C_SKIP) &&
                  (a.skip > INT64_MAX / a.bsz || size < a.bsz * a.skip);

    qcowkit_create_opts_init(&co);
    co.format = out_format;
    co.size = skip_beyond ? 0 : size - a.bsz * a.skip;
    if (out_format == QCOWKIT_FORMAT_QCOW && co.size == 0) {
        cli_error("%s: error while creating output image: Image size is too "
                  "small, cannot be zero length",
                  a.out);
        goto out;
    }
    if (strcmp(a.in, a.out) == 0) {
        cli_error("%s: error while creating output image: the output is "
                  "the input",
                  a.out);
        goto out;
    }
    err = qcowkit_create(a.out, &co, QCOWKIT_IO_TRUNC);
    if (err == -EBUSY) { /* in use: the library's message, as open gives */
        cli_lib_error(err, NULL);
        goto out;
    }
    if (err < 0) {
        cli_error("%s: error while creating output image: %s", a.out,
                  qcowkit_errmsg());
        goto out;
    }
    if (cli_open(a.out, out_format, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_AUTO,
                 &out) < 0)
        goto out;
    if (skip_beyond) {
        /* As dd(1): a warning, and an empty output image. */
        cli_error("%s: cannot skip to specified offset", a.in);
        in_pos = size;
    } else {
        in_pos = a.skip * a.bsz;
    }
    buf = malloc(a.bsz);
    if (!buf) {
        cli_error("out of memory");
        goto out;
    }
    for (out_pos = 0; in_pos < size;) {
        uint64_t bytes = in_pos + a.bsz > size ? size - in_pos : a.bsz;

        err = qcowkit_pread(in, buf, bytes, in_pos);
        if (err < 0) {
            cli_error("error while reading from input image file: %s",
                      qcowkit_errmsg());
            goto out;
        }
        in_pos += bytes;
        /* The new output reads as zeros already: leave zero blocks out. */
        if (!cli_is_zero(buf, bytes)) {
            err = qcowkit_pwrite(out, buf, bytes, out_pos);
            if (err < 0) {
                cli_error("error while writing to output image file: %s",
                          qcowkit_errmsg());
                goto out;
            }
        }
        out_pos += bytes;
    }
    err = qcowkit_flush(out);
    if (err < 0) {
        cli_error("error while writing to output image file: %s",
                  qcowkit_errmsg());
        goto out;
    }
    ret = 0;
out:
    free(buf);
    if (out && qcowkit_close(out) < 0 && ret == 0) {
        cli_lib_error(-EIO, a.out);
        ret = 1;
    }
    qcowkit_close(in);
    return ret;
}
