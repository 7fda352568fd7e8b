/* cmd-io-discard.c - qcowkit io discard: qemu-io's command, but the
 * space of whole clusters (or a raw file's range) is given back. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cmd-io.h"

/* OFFSET LEN at argv[optind]; 0, or an error after qemu-io's message. */
static int parse_discard_range(char **argv, int64_t *offset, int64_t *count)
{
    *offset = io_cvtnum(argv[optind]);
    if (*offset < 0) {
        io_print_cvtnum_err(*offset, argv[optind]);
        return (int)*offset;
    }
    *count = io_cvtnum(argv[optind + 1]);
    if (*count < 0) {
        io_print_cvtnum_err(*count, argv[optind + 1]);
        return (int)*count;
    }
    if ((uint64_t)*count > REQUEST_MAX_BYTES) {
        printf("length cannot exceed %" PRIu64 ", given %s\n",
               REQUEST_MAX_BYTES, argv[optind + 1]);
        return -EINVAL;
    }
    return 0;
}

/* The discard itself; a raw file's tail past its end has nothing to give.
 * A raw file is punched byte for byte, as qemu-io's page-cache open does
 * (the library's discard keeps partial sectors). */
static int do_discard(struct io_ctx *ctx, int64_t offset, int64_t count)
{
    uint64_t size = cli_image_size(ctx->img);
    int ret = io_check_request(ctx, offset, count);

    if (ret < 0 || (uint64_t)offset >= size)
        return ret;
    if ((uint64_t)count > size - (uint64_t)offset)
        count = (int64_t)(size - (uint64_t)offset);
    if (count == 0)
        return 0;
    if (ctx->raw)
        return qcowkit_pwrite_zeroes_flags(ctx->img, (size_t)count,
                                           (uint64_t)offset,
                                           QCOWKIT_ZEROES_MAY_UNMAP);
    return qcowkit_discard(ctx->img, (uint64_t)offset, (uint64_t)count);
}

int discard_f(struct io_ctx *ctx, int argc, char **argv)
{
    const struct io_cmd *me = io_find_cmd("discard");
    bool Cflag = false, qflag = false;
    int64_t offset = 0, count = 0;
    double t1, t2;
    int c, ret;

    /* qemu-io asks for write permission before it parses anything. */
    if (ctx->read_only) {
        fflush(stdout);
        fprintf(stderr, "%s: Block node is read-only\n", CLI_NAME);
        return -EACCES;
    }
    optind = 0;
    opterr = 1;
    while ((c = getopt(argc, argv, "Cq")) != -1) {
        if (c == 'C') {
            Cflag = true;
        } else if (c == 'q') {
            qflag = true;
        } else {
            fflush(stderr);
            io_usage(me);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        io_usage(me);
        return -EINVAL;
    }
    ret = parse_discard_range(argv, &offset, &count);
    if (ret < 0)
        return ret;
    t1 = io_now();
    ret = do_discard(ctx, offset, count);
    t2 = io_now();
    if (ret < 0) {
        printf("discard failed: %s\n", strerror(-ret));
        return ret;
    }
    if (!qflag)
        io_print_report("discard", t2 - t1, offset, count, count, 1, Cflag);
    return 0;
}
