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

/* Create the output image of size bytes and open it. */
static int create_output(const struct dd_args *a, enum qcowkit_format format,
                         uint64_t size, struct qcowkit_image **out)
{
    struct qcowkit_create_opts co;
    int err;

    qcowkit_create_opts_init(&co);
    co.format = format;
    co.size = size;
    if (format == QCOWKIT_FORMAT_QCOW && co.size == 0) {
        cli_error("%s: error while creating output image: Image size is too "
                  "small, cannot be zero length",
                  a->out);
        return -1;
    }
    if (strcmp(a->in, a->out) == 0) {
        cli_error("%s: error while creating output image: the output is "
                  "the input",
                  a->out);
        return -1;
    }
    err = qcowkit_create(a->out, &co, QCOWKIT_IO_TRUNC);
    if (err == -EBUSY) { /* in use: the library's message, as open gives */
        cli_lib_error(err, NULL);
        return -1;
    }
    if (err < 0) {
        cli_error("%s: error while creating output image: %s", a->out,
                  qcowkit_errmsg());
        return -1;
    }
    return cli_open(a->out, format, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_AUTO,
                    out) < 0
               ? -1
               : 0;
}

/* Copy [in_pos, size) of in to the start of out, one block at a time. */
static int copy_blocks(struct qcowkit_image *in, struct qcowkit_image *out,
                       uint64_t bsz, uint64_t in_pos, uint64_t size)
{
    uint8_t *buf = malloc(bsz);
    uint64_t out_pos;
    int err;

    if (!buf) {
        cli_error("out of memory");
        return -1;
    }
    for (out_pos = 0; in_pos < size;) {
        uint64_t bytes = in_pos + bsz > size ? size - in_pos : bsz;

        err = qcowkit_pread(in, buf, bytes, in_pos);
        if (err < 0) {
            cli_error("error while reading from input image file: %s",
                      qcowkit_errmsg());
            goto fail;
        }
        in_pos += bytes;
        /* The new output reads as zeros already: leave zero blocks out. */
        if (!cli_is_zero(buf, bytes)) {
            err = qcowkit_pwrite(out, buf, bytes, out_pos);
            if (err < 0) {
                cli_error("error while writing to output image file: %s",
                          qcowkit_errmsg());
                goto fail;
            }
        }
        out_pos += bytes;
    }
    free(buf);
    if (qcowkit_flush(out) < 0) {
        cli_error("error while writing to output image file: %s",
                  qcowkit_errmsg());
        return -1;
    }
    return 0;
fail:
    free(buf);
    return -1;
}

/* Copy as the operands say, from the open input. */
static int run_dd(const struct dd_args *a, struct qcowkit_image *in,
                  const char *out_fmt)
{
    enum qcowkit_format out_format;
    struct qcowkit_image *out = NULL;
    uint64_t size, in_pos;
    bool skip_beyond;
    int ret = 1;

    if (strcmp(out_fmt, "qcow") == 0)
        out_format = QCOWKIT_FORMAT_QCOW;
    else if (strcmp(out_fmt, "raw") == 0)
        out_format = QCOWKIT_FORMAT_RAW;
    else {
        cli_error("Unknown file format");
        return 1;
    }
    size = cli_image_size(in);
    if ((a->flags & C_COUNT) && a->count <= INT64_MAX / a->bsz &&
        a->count * a->bsz < size)
        size = a->count * a->bsz;
    skip_beyond = (a->flags & C_SKIP) &&
                  (a->skip > INT64_MAX / a->bsz || size < a->bsz * a->skip);
    if (create_output(a, out_format, skip_beyond ? 0 : size - a->bsz * a->skip,
                      &out) < 0)
        goto out;
    if (skip_beyond) {
        /* As dd(1): a warning, and an empty output image. */
        cli_error("%s: cannot skip to specified offset", a->in);
        in_pos = size;
    } else {
        in_pos = a->skip * a->bsz;
    }
    if (copy_blocks(in, out, a->bsz, in_pos, size) == 0)
        ret = 0;
out:
    if (out && qcowkit_close(out) < 0 && ret == 0) {
        cli_lib_error(-EIO, a->out);
        ret = 1;
    }
    return ret;
}

int cmd_dd(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,        CLI_LONGOPT_OBJECT, CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_FORCE_SHARE, {NULL, 0, NULL, 0},
    };
    struct dd_args a = {.bsz = 512};
    struct cli_common co;
    const char *out_fmt = "raw";
    enum qcowkit_format format;
    struct qcowkit_image *in = NULL;
    int c, ret;

    cli_common_init(&co, "dd");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hf:O:U", longopts, NULL)) != -1) {
        if (c == 'O')
            out_fmt = optarg;
        else if ((ret = cli_common_option(&co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    for (int i = optind; i < argc; i++)
        if (dd_operand(&a, argv[i]) < 0)
            return 1;
    if (!(a.flags & C_IF) || !(a.flags & C_OF)) {
        cli_error("Must specify both input and output files");
        return 1;
    }
    if (cli_parse_format(co.fmt, &format) < 0)
        return 1;
    if (cli_open_image(a.in, co.image_opts, format,
                       QCOWKIT_OPEN_RDONLY |
                           (co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0),
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &in, NULL) < 0)
        return 1;
    ret = run_dd(&a, in, out_fmt);
    qcowkit_close(in);
    return ret;
}
