/* cmd-io-vec.c - qcowkit io: readv and writev (one request made of several
 * lengths), and aio_read, aio_write and aio_flush, their asynchronous
 * forms in qemu-io.  Here every request completes before the next command,
 * so aio_flush has nothing to wait for; the output lines are qemu-io's. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-io.h"

struct vec_args {
    bool Cflag, qflag, vflag, Pflag, fflag, iflag, uflag, zflag;
    int pattern;
    int64_t offset, count; /* count: the sum of the lengths */
};

static int parse_vec_flags(int argc, char **argv, const char *optstring,
                           const struct io_cmd *me, struct vec_args *v)
{
    int c;

    optind = 0;
    opterr = 1;
    while ((c = getopt(argc, argv, optstring)) != -1) {
        if (c == 'C')
            v->Cflag = true;
        else if (c == 'q')
            v->qflag = true;
        else if (c == 'v')
            v->vflag = true;
        else if (c == 'f')
            v->fflag = true;
        else if (c == 'i')
            v->iflag = true;
        else if (c == 'u')
            v->uflag = true;
        else if (c == 'z')
            v->zflag = true;
        else if (c == 'P') {
            v->Pflag = true;
            v->pattern = io_parse_pattern(optarg);
            if (v->pattern < 0)
                return -EINVAL;
        } else {
            io_usage(me);
            return -EINVAL;
        }
    }
    return 0;
}

/* Flags, then OFFSET LEN [LEN...]; 0, or -EINVAL after the message. */
static int parse_vec(int argc, char **argv, const char *optstring,
                     const char *name, struct vec_args *v)
{
    const struct io_cmd *me = io_find_cmd(name);

    memset(v, 0, sizeof *v);
    v->pattern = 0xcd;
    if (parse_vec_flags(argc, argv, optstring, me, v) < 0)
        return -EINVAL;
    if (optind > argc - 2) {
        io_usage(me);
        return -EINVAL;
    }
    v->offset = io_cvtnum(argv[optind]);
    if (v->offset < 0) {
        io_print_cvtnum_err(v->offset, argv[optind]);
        return -EINVAL;
    }
    for (int i = optind + 1; i < argc; i++) {
        int64_t len = io_cvtnum(argv[i]);

        if (len < 0) {
            io_print_cvtnum_err(len, argv[i]);
            return -EINVAL;
        }
        if ((uint64_t)len > REQUEST_MAX_BYTES - (uint64_t)v->count) {
            printf("Argument '%s' exceeds maximum size %" PRIu64 "\n", argv[i],
                   REQUEST_MAX_BYTES);
            return -EINVAL;
        }
        v->count += len;
    }
    return 0;
}

/* The read; reports it; a pattern mismatch is -EINVAL. */
static int vec_read(struct io_ctx *ctx, const struct vec_args *v,
                    const char *failed)
{
    uint8_t *buf = malloc(v->count ? (size_t)v->count : 1);
    double t1 = io_now(), t2;
    int ret = buf ? io_check_request(ctx, v->offset, v->count) : -ENOMEM;

    if (ret == 0 && v->count)
        ret = io_pread(ctx, buf, (uint64_t)v->count, (uint64_t)v->offset);
    t2 = io_now();
    if (ret < 0) {
        printf("%s failed: %s\n", failed, strerror(-ret));
        free(buf);
        return ret;
    }
    for (int64_t i = 0; v->Pflag && i < v->count; i++) {
        if (buf[i] != v->pattern) {
            printf("Pattern verification failed at offset %" PRId64 ", %" PRId64
                   " bytes\n",
                   v->offset, v->count);
            ret = -EINVAL;
            break;
        }
    }
    if (!v->qflag && v->vflag)
        io_dump_buffer(buf, v->offset, v->count);
    if (!v->qflag)
        io_print_report("read", t2 - t1, v->offset, v->count, v->count, 1,
                        v->Cflag);
    free(buf);
    return ret;
}

static int vec_write_data(struct io_ctx *ctx, const struct vec_args *v)
{
    uint8_t *buf;
    int ret = io_extend_raw(ctx, (uint64_t)v->offset, (uint64_t)v->count);

    if (ret < 0 || v->count == 0)
        return ret;
    if (v->zflag && v->uflag)
        return qcowkit_pwrite_zeroes_flags(ctx->img, (size_t)v->count,
                                           (uint64_t)v->offset,
                                           QCOWKIT_ZEROES_MAY_UNMAP);
    if (v->zflag)
        return io_write_zero_buffer(ctx, v->offset, v->count);
    buf = malloc((size_t)v->count);
    if (!buf)
        return -ENOMEM;
    memset(buf, v->pattern, (size_t)v->count);
    ret = qcowkit_pwrite(ctx->img, buf, (size_t)v->count, (uint64_t)v->offset);
    free(buf);
    return ret;
}

/* The write; reports it. */
static int vec_write(struct io_ctx *ctx, const struct vec_args *v,
                     const char *failed)
{
    double t1, t2;
    int ret;

    if (ctx->read_only) {
        fflush(stdout);
        cli_error("Block node is read-only");
        return -EACCES;
    }
    t1 = io_now();
    ret = io_check_request(ctx, v->offset, v->count);
    if (ret == 0)
        ret = vec_write_data(ctx, v);
    if (ret == 0 && v->fflag)
        ret = qcowkit_flush(ctx->img);
    t2 = io_now();
    if (ret < 0) {
        printf("%s failed: %s\n", failed, strerror(-ret));
        if (ret == -EPERM) /* a probed raw image: say why */
            cli_lib_error(ret, NULL);
        return ret;
    }
    if (!v->qflag)
        io_print_report("wrote", t2 - t1, v->offset, v->count, v->count, 1,
                        v->Cflag);
    return 0;
}

int readv_f(struct io_ctx *ctx, int argc, char **argv)
{
    struct vec_args v;

    if (parse_vec(argc, argv, "CP:qv", "readv", &v) < 0)
        return -EINVAL;
    return vec_read(ctx, &v, "readv");
}

int writev_f(struct io_ctx *ctx, int argc, char **argv)
{
    struct vec_args v;

    if (parse_vec(argc, argv, "CfP:q", "writev", &v) < 0)
        return -EINVAL;
    return vec_write(ctx, &v, "writev");
}

/* An aio request counts as done once submitted, as in qemu-io: its I/O
 * errors and pattern mismatches are printed but do not fail it. */
int aio_read_f(struct io_ctx *ctx, int argc, char **argv)
{
    struct vec_args v;

    if (parse_vec(argc, argv, "CP:iqv", "aio_read", &v) < 0)
        return -EINVAL;
    if (v.iflag) {
        printf("injecting invalid read request\n");
        return 0;
    }
    vec_read(ctx, &v, "readv");
    return 0;
}

int aio_write_f(struct io_ctx *ctx, int argc, char **argv)
{
    struct vec_args v;

    if (parse_vec(argc, argv, "CfiP:quz", "aio_write", &v) < 0)
        return -EINVAL;
    if (v.iflag) {
        printf("injecting invalid write request\n");
        return 0;
    }
    if (v.uflag && !v.zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (ctx->read_only)
        return vec_write(ctx, &v, "writev");
    vec_write(ctx, &v, "writev");
    return 0;
}

int aio_flush_f(struct io_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return qcowkit_flush(ctx->img);
}
