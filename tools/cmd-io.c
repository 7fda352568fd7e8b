/* cmd-io.c - qcowkit io: a subset of qemu-io, with its output text.
 * Commands come from -c options or, without them, from standard input. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd-io.h"

void io_usage(const struct io_cmd *c)
{
    printf("%s %s -- %s\n", c->name, c->args ? c->args : "", c->oneline);
}

/* qemu-io's io_cvtnum(): a size with suffixes; negative errno on error. */
int64_t io_cvtnum(const char *s)
{
    uint64_t v;
    const char *why;
    int err = cli_parse_size(s, INT64_MAX, &v, &why);

    return err < 0 ? err : (int64_t)v;
}

void io_print_cvtnum_err(int64_t rc, const char *arg)
{
    if (rc == -EINVAL)
        printf("Parsing error: non-numeric argument, or "
               "extraneous/unrecognized suffix -- %s\n",
               arg);
    else if (rc == -ERANGE)
        printf("Parsing error: argument too large -- %s\n", arg);
    else
        printf("Parsing error: %s\n", arg);
}

int io_parse_pattern(const char *arg)
{
    char *end = NULL;
    long pattern = strtol(arg, &end, 0);

    if (pattern < 0 || pattern > UCHAR_MAX || *end != '\0') {
        printf("%s is not a valid pattern byte\n", arg);
        return -1;
    }
    return (int)pattern;
}

/* ------------------------------------------------------------ reporting */

double io_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void timestr(double t, char *buf, size_t len, bool fixed)
{
    unsigned long secs = (unsigned long)t;
    double frac = t - (double)secs;

    if (fixed || secs >= 3600)
        snprintf(buf, len, "%lu:%02lu:%05.2f", secs / 3600, (secs % 3600) / 60,
                 (double)(secs % 60) + frac);
    else
        snprintf(buf, len, "%05.2f sec", (double)(secs % 60) + frac);
}

static double tdiv(double value, double t)
{
    return value / t;
}

void io_print_report(const char *op, double t, int64_t offset, int64_t count,
                     int64_t total, int cnt, bool compact)
{
    char s1[64], s2[64], ts[64];

    timestr(t, ts, sizeof ts, compact);
    if (!compact) {
        cli_cvtstr((double)total, s1, sizeof s1);
        cli_cvtstr(tdiv((double)total, t), s2, sizeof s2);
        printf("%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n", op,
               total, count, offset);
        printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n", s1, cnt, ts, s2,
               tdiv((double)cnt, t));
    } else {
        printf("%" PRId64 ",%d,%s,%.3f,%.3f\n", total, cnt, ts,
               tdiv((double)total, t), tdiv((double)cnt, t));
    }
}

void io_dump_buffer(const uint8_t *buf, int64_t offset, int64_t len)
{
    for (int64_t i = 0; i < len; i += 16) {
        int j;

        printf("%08" PRIx64 ":  ", (uint64_t)(offset + i));
        for (j = 0; j < 16 && i + j < len; j++)
            printf("%02x ", buf[i + j]);
        printf(" ");
        for (j = 0; j < 16 && i + j < len; j++)
            putchar(isalnum(buf[i + j]) ? buf[i + j] : '.');
        printf("\n");
    }
}

/* QEMU answers requests outside the image with EIO. */
int io_check_request(struct io_ctx *ctx, int64_t offset, int64_t count)
{
    uint64_t size = io_size(ctx);

    if ((uint64_t)offset > size || size - (uint64_t)offset < (uint64_t)count)
        return -EIO;
    return 0;
}

/* ----------------------------------------------------------------- read */

/* OFFSET COUNT at argv[optind]: 0, or -EINVAL after qemu-io's message.
 * limited: COUNT may not exceed one request (hint says when it may). */
static int parse_range(char **argv, bool limited, const char *hint,
                       int64_t *offset, int64_t *count)
{
    const char *count_arg = argv[optind + 1];

    *offset = io_cvtnum(argv[optind]);
    if (*offset < 0) {
        io_print_cvtnum_err(*offset, argv[optind]);
        return -EINVAL;
    }
    *count = io_cvtnum(count_arg);
    if (*count < 0) {
        io_print_cvtnum_err(*count, count_arg);
        return -EINVAL;
    }
    if (limited && (uint64_t)*count > REQUEST_MAX_BYTES) {
        printf("length cannot exceed %" PRIu64 "%s, given %s\n",
               REQUEST_MAX_BYTES, hint, count_arg);
        return -EINVAL;
    }
    return 0;
}

struct read_args {
    bool Cflag, qflag, vflag, Pflag, lflag, sflag, bflag;
    int pattern;
    int64_t pattern_offset, pattern_count;
};

/* read's flags; 0 or -EINVAL after the message. */
static int parse_read_flags(int argc, char **argv, const struct io_cmd *me,
                            struct read_args *r)
{
    int c;

    memset(r, 0, sizeof *r);
    optind = 0;
    opterr = 1;
    while ((c = getopt(argc, argv, "bCl:pP:qs:v")) != -1) {
        int64_t *num = NULL;

        if (c == 'b')
            r->bflag = true;
        else if (c == 'C')
            r->Cflag = true;
        else if (c == 'l')
            r->lflag = true, num = &r->pattern_count;
        else if (c == 'p')
            continue; /* ignored, as in qemu-io */
        else if (c == 'P') {
            r->Pflag = true;
            r->pattern = io_parse_pattern(optarg);
            if (r->pattern < 0)
                return -EINVAL;
        } else if (c == 'q')
            r->qflag = true;
        else if (c == 's')
            r->sflag = true, num = &r->pattern_offset;
        else if (c == 'v')
            r->vflag = true;
        else {
            fflush(stderr);
            io_usage(me);
            return -EINVAL;
        }
        if (num && (*num = io_cvtnum(optarg)) < 0) {
            io_print_cvtnum_err(*num, optarg);
            return -EINVAL;
        }
    }
    return 0;
}

/* -P: the pattern over [pattern_offset, +pattern_count) of buf. */
static int verify_pattern(const struct read_args *r, const uint8_t *buf,
                          int64_t offset)
{
    for (int64_t i = 0; i < r->pattern_count; i++) {
        if (buf[r->pattern_offset + i] != r->pattern) {
            printf("Pattern verification failed at offset %" PRId64 ", %" PRId64
                   " bytes\n",
                   offset + r->pattern_offset, r->pattern_count);
            return -EINVAL;
        }
    }
    return 0;
}

static int read_f(struct io_ctx *ctx, int argc, char **argv)
{
    const struct io_cmd *me = io_find_cmd("read");
    struct read_args r;
    int64_t offset, count;
    double t1, t2;
    uint8_t *buf;
    int ret = parse_read_flags(argc, argv, me, &r);

    if (ret < 0)
        return ret;
    if (optind != argc - 2) {
        io_usage(me);
        return -EINVAL;
    }
    if (parse_range(argv, true, "", &offset, &count) < 0)
        return -EINVAL;
    if (!r.Pflag && (r.lflag || r.sflag)) {
        io_usage(me);
        return -EINVAL;
    }
    if (!r.lflag)
        r.pattern_count = count - r.pattern_offset;
    if (r.pattern_count < 0 || r.pattern_count + r.pattern_offset > count) {
        printf("pattern verification range exceeds end of read data\n");
        return -EINVAL;
    }
    if (r.bflag) {
        /* qcow images have no VM state. */
        printf("read failed: %s\n", strerror(ENOTSUP));
        return -ENOTSUP;
    }

    buf = malloc(count ? (size_t)count : 1);
    if (!buf) {
        printf("read failed: %s\n", strerror(ENOMEM));
        return -ENOMEM;
    }
    memset(buf, 0xab, (size_t)count);
    t1 = io_now();
    ret = io_check_request(ctx, offset, count);
    if (ret == 0 && count)
        ret = io_pread(ctx, buf, (uint64_t)count, (uint64_t)offset);
    t2 = io_now();
    if (ret < 0) {
        printf("read failed: %s\n", strerror(-ret));
        goto out;
    }
    if (r.Pflag && r.pattern_count > 0)
        ret = verify_pattern(&r, buf, offset);
    if (r.qflag)
        goto out;
    if (r.vflag)
        io_dump_buffer(buf, offset, count);
    io_print_report("read", t2 - t1, offset, count, count, 1, r.Cflag);
out:
    free(buf);
    return ret;
}

/* ---------------------------------------------------------------- write */

/* qemu-io's -s: the file's bytes, repeated to fill len. */
static uint8_t *load_source(const char *path, int64_t len)
{
    FILE *f = fopen(path, "r");
    uint8_t *buf;
    size_t got;

    if (!f) {
        fflush(stdout);
        perror(path);
        return NULL;
    }
    buf = malloc(len ? (size_t)len : 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    got = fread(buf, 1, (size_t)len, f);
    if (ferror(f)) {
        fflush(stdout);
        perror(path);
        goto fail;
    }
    if (got == 0 && len > 0) {
        fflush(stdout);
        fprintf(stderr, "%s: file is empty\n", path);
        goto fail;
    }
    for (size_t at = got; at < (size_t)len; at += got) {
        size_t n = (size_t)len - at < got ? (size_t)len - at : got;
        memcpy(buf + at, buf, n);
    }
    fclose(f);
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

/*
 * write -z without -u: qcow has no way to store zeros cheaply, so QEMU
 * writes zero-filled data (the clusters become allocated).  Do the same;
 * a raw file gets the library's zeroing, which keeps the range allocated
 * as QEMU's does.  (With -c, as in qemu-io, the zeros are not compressed.)
 */
int io_write_zero_buffer(struct io_ctx *ctx, int64_t offset, int64_t count)
{
    const size_t chunk = 1u << 20;
    uint8_t *zeros;
    int ret = 0;

    if (ctx->raw)
        return qcowkit_pwrite_zeroes_flags(ctx->img, (size_t)count,
                                           (uint64_t)offset, 0);
    zeros = calloc(1, chunk);
    if (!zeros)
        return -ENOMEM;
    while (count > 0 && ret == 0) {
        size_t n = (uint64_t)count < chunk ? (size_t)count : chunk;
        ret = qcowkit_pwrite(ctx->img, zeros, n, (uint64_t)offset);
        offset += (int64_t)n;
        count -= (int64_t)n;
    }
    free(zeros);
    return ret;
}

struct write_args {
    bool Cflag, qflag, Pflag, zflag, bflag, cflag, fflag, uflag, nflag;
    const char *source;
    int pattern;
};

/* write's flags; 0 or -EINVAL after the message. */
static int parse_write_flags(int argc, char **argv, const struct io_cmd *me,
                             struct write_args *w)
{
    int c;

    memset(w, 0, sizeof *w);
    w->pattern = 0xcd;
    optind = 0;
    opterr = 1;
    while ((c = getopt(argc, argv, "bcCfnpP:qs:uz")) != -1) {
        if (c == 'b')
            w->bflag = true;
        else if (c == 'c')
            w->cflag = true;
        else if (c == 'C')
            w->Cflag = true;
        else if (c == 'f')
            w->fflag = true;
        else if (c == 'n')
            w->nflag = true;
        else if (c == 'p')
            continue; /* ignored, as in qemu-io */
        else if (c == 'P') {
            w->Pflag = true;
            w->pattern = io_parse_pattern(optarg);
            if (w->pattern < 0)
                return -EINVAL;
        } else if (c == 'q')
            w->qflag = true;
        else if (c == 's')
            w->source = optarg;
        else if (c == 'u')
            w->uflag = true;
        else if (c == 'z')
            w->zflag = true;
        else {
            fflush(stderr);
            io_usage(me);
            return -EINVAL;
        }
    }
    return 0;
}

/* Flags that exclude each other, as qemu-io checks them. */
static int check_write_flags(const struct write_args *w)
{
    const char *why = NULL;

    if (w->bflag && w->zflag)
        why = "-b and -z cannot be specified at the same time";
    else if (w->fflag && (w->bflag || w->cflag))
        why = "-f and -b or -c cannot be specified at the same time";
    else if (w->uflag && !w->zflag)
        why = "-u requires -z to be specified";
    else if ((int)w->zflag + (int)w->Pflag + (int)(w->source != NULL) > 1)
        why = "Only one of -z, -P, and -s can be specified at the same time";
    if (why) {
        printf("%s\n", why);
        return -EINVAL;
    }
    return 0;
}

/* What may refuse the write before any data is made. */
static int check_write_request(struct io_ctx *ctx, const struct write_args *w,
                               int64_t offset, int64_t count)
{
    if (w->bflag || w->cflag) {
        if (offset % SECTOR) {
            printf("%" PRId64 " is not a sector-aligned value for 'offset'\n",
                   offset);
            return -EINVAL;
        }
        if (count % SECTOR) {
            printf("%" PRId64 " is not a sector-aligned value for 'count'\n",
                   count);
            return -EINVAL;
        }
    }
    if (w->bflag) {
        printf("write failed: %s\n", strerror(ENOTSUP));
        return -ENOTSUP;
    }
    if (w->cflag && ctx->encrypted) {
        /* The format stores compressed clusters in plaintext. */
        fflush(stdout);
        fprintf(stderr,
                "%s: write failed: Compression and encryption not "
                "supported at the same time\n",
                CLI_NAME);
        return -ENOTSUP;
    }
    if (ctx->read_only) {
        fflush(stdout);
        fprintf(stderr, "%s: Block node is read-only\n", CLI_NAME);
        return -EACCES;
    }
    return 0;
}

/* The data to write: the -s file's bytes or the pattern. */
static int write_data(const struct write_args *w, int64_t count, uint8_t **buf)
{
    if (w->source) {
        *buf = load_source(w->source, count);
        return *buf ? 0 : -EINVAL;
    }
    *buf = malloc(count ? (size_t)count : 1);
    if (!*buf) {
        printf("write failed: %s\n", strerror(ENOMEM));
        return -ENOMEM;
    }
    memset(*buf, w->pattern, (size_t)count);
    return 0;
}

static int do_write(struct io_ctx *ctx, const struct write_args *w,
                    const uint8_t *buf, int64_t offset, int64_t count)
{
    int ret = io_check_request(ctx, offset, count);

    if (ret < 0 || count == 0)
        return ret;
    ret = io_extend_raw(ctx, (uint64_t)offset, (uint64_t)count);
    if (ret < 0)
        return ret;
    if (w->zflag && w->nflag && !ctx->raw)
        ret = -ENOTSUP; /* qcow cannot zero without writing, as in QEMU */
    else if (w->zflag && w->uflag)
        ret = qcowkit_pwrite_zeroes_flags(ctx->img, (size_t)count,
                                          (uint64_t)offset,
                                          QCOWKIT_ZEROES_MAY_UNMAP);
    else if (w->zflag)
        ret = io_write_zero_buffer(ctx, offset, count);
    else if (w->cflag)
        ret = qcowkit_pwrite_compressed(ctx->img, buf, (size_t)count,
                                        (uint64_t)offset);
    else
        ret = qcowkit_pwrite(ctx->img, buf, (size_t)count, (uint64_t)offset);
    if (ret == 0 && w->fflag)
        ret = qcowkit_flush(ctx->img);
    return ret;
}

static int write_f(struct io_ctx *ctx, int argc, char **argv)
{
    const struct io_cmd *me = io_find_cmd("write");
    struct write_args w;
    int64_t offset, count;
    double t1, t2;
    uint8_t *buf = NULL;
    int ret = parse_write_flags(argc, argv, me, &w);

    if (ret < 0)
        return ret;
    if (optind != argc - 2) {
        io_usage(me);
        return -EINVAL;
    }
    if (check_write_flags(&w) < 0 ||
        parse_range(argv, !(w.zflag && w.nflag), " without -n", &offset,
                    &count) < 0)
        return -EINVAL;
    ret = check_write_request(ctx, &w, offset, count);
    if (ret == 0 && !w.zflag)
        ret = write_data(&w, count, &buf);
    if (ret < 0)
        return ret;

    t1 = io_now();
    ret = do_write(ctx, &w, buf, offset, count);
    t2 = io_now();
    if (ret < 0) {
        printf("write failed: %s\n", strerror(-ret));
        /* Say why a probed raw image refused it (qemu-io warned at open). */
        if (ret == -EPERM)
            cli_lib_error(ret, NULL);
    } else if (!w.qflag) {
        io_print_report("wrote", t2 - t1, offset, count, count, 1, w.Cflag);
    }
    free(buf);
    return ret;
}

/* ------------------------------------------------------- other commands */

static int flush_f(struct io_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return qcowkit_flush(ctx->img);
}

static int length_f(struct io_ctx *ctx, int argc, char **argv)
{
    char s[64];

    (void)argc;
    (void)argv;
    cli_cvtstr((double)io_size(ctx), s, sizeof s);
    printf("%s\n", s);
    return 0;
}

static int info_f(struct io_ctx *ctx, int argc, char **argv)
{
    struct qcowkit_info info;
    char s1[64], s2[64];
    int err = cli_get_info(ctx->img, &info);

    (void)argc;
    (void)argv;
    if (err < 0)
        return err;
    cli_cvtstr((double)info.cluster_size, s1, sizeof s1);
    cli_cvtstr(0, s2, sizeof s2);
    printf("format name: %s\n", cli_format_name(info.format));
    printf("cluster size: %s\n", s1);
    printf("vm state offset: %s\n", s2);
    return 0;
}

/* Is offset allocated in this layer (not its backing)?  *pnum: run. */
int io_is_allocated(struct io_ctx *ctx, uint64_t offset, uint64_t bytes,
                    uint64_t *pnum)
{
    struct qcowkit_extent e;
    uint64_t size = cli_image_size(ctx->img);
    int err;

    if (offset >= io_size(ctx) || bytes == 0) {
        *pnum = 0;
        return 0;
    }
    if (offset >= size) { /* a raw file's tail up to a whole sector */
        *pnum = io_size(ctx) - offset;
        return 1;
    }
    if (bytes > size - offset)
        bytes = size - offset;
    err = qcowkit_block_status(ctx->img, offset, bytes, &e);
    if (err < 0)
        return err;
    *pnum = e.length;
    return (e.flags & QCOWKIT_EXTENT_ALLOCATED) ? 1 : 0;
}

static int map_f(struct io_ctx *ctx, int argc, char **argv)
{
    uint64_t size = io_size(ctx), offset = 0;

    (void)argc;
    (void)argv;
    if (size == 0)
        return 0;
    do {
        uint64_t num, more;
        char s1[64], s2[64];
        int first = io_is_allocated(ctx, offset, size - offset, &num), ret;

        if (first < 0) {
            fflush(stdout);
            fprintf(stderr, "Failed to get allocation status: %s\n",
                    strerror(-first));
            return first;
        }
        /* Merge runs with the same status, as qemu-io does. */
        while (offset + num < size) {
            ret =
                io_is_allocated(ctx, offset + num, size - offset - num, &more);
            if (ret != first || more == 0)
                break;
            num += more;
        }
        cli_cvtstr((double)num, s1, sizeof s1);
        cli_cvtstr((double)offset, s2, sizeof s2);
        printf("%s (0x%" PRIx64 ") bytes %s at offset %s (0x%" PRIx64 ")\n", s1,
               num, first ? "    allocated" : "not allocated", s2, offset);
        offset += num;
    } while (offset < size);
    return 0;
}

static int alloc_f(struct io_ctx *ctx, int argc, char **argv)
{
    int64_t offset, count = SECTOR, remaining, sum = 0;
    char s1[64];

    offset = io_cvtnum(argv[1]);
    if (offset < 0) {
        io_print_cvtnum_err(offset, argv[1]);
        return -EINVAL;
    }
    if (argc == 3) {
        count = io_cvtnum(argv[2]);
        if (count < 0) {
            io_print_cvtnum_err(count, argv[2]);
            return -EINVAL;
        }
    }
    remaining = count;
    for (int64_t at = offset; remaining > 0;) {
        uint64_t num;
        int ret = io_is_allocated(ctx, (uint64_t)at, (uint64_t)remaining, &num);

        if (ret < 0) {
            printf("is_allocated failed: %s\n", strerror(-ret));
            return ret;
        }
        if (num == 0) {
            count -= remaining; /* past the end of the image */
            break;
        }
        at += (int64_t)num;
        remaining -= (int64_t)num;
        if (ret)
            sum += (int64_t)num;
    }
    cli_cvtstr((double)offset, s1, sizeof s1);
    printf("%" PRId64 "/%" PRId64 " bytes allocated at offset %s\n", sum, count,
           s1);
    return 0;
}

static int quit_f(struct io_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    ctx->quit = true;
    return 0;
}

static int help_f(struct io_ctx *ctx, int argc, char **argv);

/* sleep MS: the only time qemu-io lets pass on purpose. */
static int sleep_f(struct io_ctx *ctx, int argc, char **argv)
{
    char *end = NULL;
    long long ms;
    struct timespec ts;

    (void)ctx;
    (void)argc;
    errno = 0;
    ms = strtoll(argv[1], &end, 10);
    if (errno || end == argv[1] || *end || ms < 0) {
        printf("%s is not a valid number\n", argv[1]);
        return -EINVAL;
    }
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 0;
}

/* The commands qemu-io runs with no file open. */
static bool needs_file(const struct io_cmd *c)
{
    return c->fn != help_f && c->fn != open_f && c->fn != quit_f &&
           c->fn != sleep_f;
}

static const struct io_cmd io_cmds[] = {
    {"aio_flush", NULL, aio_flush_f, 0, 0, NULL,
     "completes all outstanding aio requests"},
    {"aio_read", NULL, aio_read_f, 2, -1,
     "[-Ciqv] [-P pattern] off len [len..]",
     "asynchronously reads a number of bytes"},
    {"aio_write", NULL, aio_write_f, 2, -1,
     "[-Cfiquz] [-P pattern] off len [len..]",
     "asynchronously writes a number of bytes"},
    {"alloc", NULL, alloc_f, 1, 2, "offset [count]",
     "checks if offset is allocated in the file"},
    {"close", "c", close_f, 0, 0, NULL, "close the current open file"},
    {"discard", "d", discard_f, 2, -1, "[-Cq] off len",
     "discards a number of bytes at a specified offset"},
    {"flush", "f", flush_f, 0, 0, NULL, "flush all in-core file state to disk"},
    {"help", "?", help_f, 0, 1, "[command]", "help for one or all commands"},
    {"info", "i", info_f, 0, 0, NULL,
     "prints information about the current file"},
    {"length", "l", length_f, 0, 0, NULL,
     "gets the length of the current file"},
    {"map", NULL, map_f, 0, 0, "", "prints the allocated areas of a file"},
    {"open", "o", open_f, 1, -1,
     "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
     "open the file specified by path"},
    {"quit", "q", quit_f, 0, 0, NULL, "exit the program"},
    {"read", "r", read_f, 2, -1,
     "[-abCqv] [-P pattern [-s off] [-l len]] off len",
     "reads a number of bytes at a specified offset"},
    {"readv", NULL, readv_f, 2, -1, "[-Cqv] [-P pattern] off len [len..]",
     "reads a number of bytes at a specified offset"},
    {"sleep", NULL, sleep_f, 1, 1, NULL,
     "waits for the given value in milliseconds"},
    {"truncate", "t", truncate_f, 1, 3, "[-m prealloc_mode] off",
     "truncates the current file at the given offset"},
    {"write", "w", write_f, 2, -1,
     "[-bcCfnquz] [-P pattern | -s source_file] off len",
     "writes a number of bytes at a specified offset"},
    {"writev", NULL, writev_f, 2, -1, "[-Cfq] [-P pattern] off len [len..]",
     "writes a number of bytes at a specified offset"},
};

#define N_IO_CMDS (sizeof io_cmds / sizeof io_cmds[0])

const struct io_cmd *io_find_cmd(const char *name)
{
    for (size_t i = 0; i < N_IO_CMDS; i++)
        if (strcmp(io_cmds[i].name, name) == 0 ||
            (io_cmds[i].altname && strcmp(io_cmds[i].altname, name) == 0))
            return &io_cmds[i];
    return NULL;
}

static void help_oneline(const struct io_cmd *c)
{
    printf("%s ", c->name);
    if (c->args)
        printf("%s ", c->args);
    printf("-- %s\n", c->oneline);
}

static int help_f(struct io_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    if (argc == 1) {
        for (size_t i = 0; i < N_IO_CMDS; i++)
            help_oneline(&io_cmds[i]);
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    const struct io_cmd *c = io_find_cmd(argv[1]);
    if (!c) {
        printf("command %s not found\n", argv[1]);
        return -EINVAL;
    }
    help_oneline(c);
    return 0;
}

/* ------------------------------------------------------------ the loop */

/* Split a line on blanks (no quoting, as qemu-io) and run it. */
static int run_command(struct io_ctx *ctx, const char *line)
{
    char *copy = strdup(line), *save = NULL, *tok;
    char **argv = NULL;
    int argc = 0, ret = 0;
    const struct io_cmd *c;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, " \t\n", &save); tok;
         tok = strtok_r(NULL, " \t\n", &save)) {
        char **grown = realloc(argv, (size_t)(argc + 2) * sizeof *argv);
        if (!grown) {
            ret = -ENOMEM;
            goto out;
        }
        argv = grown;
        argv[argc++] = tok;
        argv[argc] = NULL;
    }
    if (argc == 0)
        goto out;
    c = io_find_cmd(argv[0]);
    if (!c) {
        fflush(stdout);
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        ret = -EINVAL;
        goto out;
    }
    if (argc - 1 < c->argmin || (c->argmax != -1 && argc - 1 > c->argmax)) {
        fflush(stdout);
        if (c->argmax == -1)
            fprintf(stderr,
                    "bad argument count %d to %s, expected at least %d "
                    "arguments\n",
                    argc - 1, argv[0], c->argmin);
        else if (c->argmin == c->argmax)
            fprintf(stderr,
                    "bad argument count %d to %s, expected %d arguments\n",
                    argc - 1, argv[0], c->argmin);
        else
            fprintf(stderr,
                    "bad argument count %d to %s, expected between %d and "
                    "%d arguments\n",
                    argc - 1, argv[0], c->argmin, c->argmax);
        ret = -EINVAL;
        goto out;
    }
    fflush(stdout);
    if (!ctx->img && needs_file(c)) {
        fprintf(stderr, "no file open, try 'help open'\n");
        ret = -EINVAL;
        goto out;
    }
    ret = c->fn(ctx, argc, argv);
    fflush(stdout);
out:
    free(argv);
    free(copy);
    return ret;
}

struct io_args {
    struct cli_common co;
    const char **cmds; /* -c, in order */
    int ncmds;
    struct io_open_opts open;
};

#define IO_NOT_MINE (-2)

static int add_command(struct io_args *a, const char *cmd)
{
    const char **grown =
        realloc(a->cmds, (size_t)(a->ncmds + 1) * sizeof *a->cmds);

    if (!grown) {
        cli_error("out of memory");
        return 1;
    }
    a->cmds = grown;
    a->cmds[a->ncmds++] = cmd;
    return CLI_NEXT_OPTION;
}

/* The options only qemu-io has; CLI_NEXT_OPTION, an exit code, or
 * IO_NOT_MINE when c is not one of them. */
static int io_option(struct io_args *a, int c)
{
    switch (c) {
    case 'c':
        return add_command(a, optarg);
    case 'r':
        a->open.read_only = true;
        return CLI_NEXT_OPTION;
    case 's':
        a->open.snapshot = true;
        return CLI_NEXT_OPTION;
    case 'C':
        a->open.copy_on_read = true;
        return CLI_NEXT_OPTION;
    case 'V':
        printf("%s io version %s (libqcowkit %s)\n", CLI_NAME,
               QCOWKIT_VERSION_STRING, qcowkit_version());
        return 0;
    case 'n': /* the host cache is the library's to use: a hint only */
    case 'm': /* misalignment is checked anyway: requests take any bytes */
    case 'k':
    case 'S':
    case 't':
    case 'd':
    case 'i':
        return CLI_NEXT_OPTION; /* accepted for qemu-io compatibility */
    default:
        return IO_NOT_MINE;
    }
}

/* Returns CLI_NEXT_OPTION when the commands are to run, else the exit
 * code (a->cmds is freed then). */
static int parse_io_args(int argc, char **argv, struct io_args *a)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_OBJECT,
        {"version", no_argument, NULL, 'V'},
        {"cmd", required_argument, NULL, 'c'},
        CLI_LONGOPT_FORMAT,
        {"read-only", no_argument, NULL, 'r'},
        {"cache", required_argument, NULL, 't'},
        {"nocache", no_argument, NULL, 'n'},
        {"copy-on-read", no_argument, NULL, 'C'},
        {"misalign", no_argument, NULL, 'm'},
        {"native-aio", no_argument, NULL, 'k'},
        {"discard", required_argument, NULL, 'd'},
        {"aio", required_argument, NULL, 'i'},
        CLI_LONGOPT_FORCE_SHARE,
        CLI_LONGOPT_IMAGE_OPTS,
        {"snapshot", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    int c, ret = CLI_NEXT_OPTION;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "io");
    optind = 0;
    opterr = 0;
    while (ret == CLI_NEXT_OPTION &&
           (c = getopt_long(argc, argv, ":c:f:hVnCrsSt:TUd:kmi:", longopts,
                            NULL)) != -1) {
        ret = io_option(a, c);
        if (ret == IO_NOT_MINE)
            ret = cli_common_option(&a->co, argv, c);
    }
    /* No file: the commands (open) or standard input name one. */
    if (ret == CLI_NEXT_OPTION && optind < argc - 1)
        ret = cli_usage_error("io", "Unexpected argument: %s", argv[argc - 1]);
    if (ret != CLI_NEXT_OPTION)
        free(a->cmds);
    return ret;
}

/* The -c commands, or else standard input; the last error or 0. */
static int run_commands(struct io_ctx *ctx, const struct io_args *a)
{
    char line[4096];
    int ret, last_error = 0;

    for (int i = 0; i < a->ncmds && !ctx->quit; i++) {
        ret = run_command(ctx, a->cmds[i]);
        if (ret < 0)
            last_error = ret;
    }
    /* qemu-io prompts even when stdin is not a terminal. */
    while (a->ncmds == 0 && !ctx->quit) {
        printf("%s> ", CLI_NAME);
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            break;
        ret = run_command(ctx, line);
        if (ret < 0)
            last_error = ret;
    }
    return last_error;
}

int cmd_io(int argc, char **argv)
{
    struct io_args a;
    struct io_ctx ctx;
    int ret, last_error;

    memset(&ctx, 0, sizeof ctx);
    ret = parse_io_args(argc, argv, &a);
    if (ret != CLI_NEXT_OPTION)
        return ret;
    a.open.fmt = a.co.fmt;
    a.open.image_opts = a.co.image_opts;
    a.open.force_share = a.co.force_share;
    if (optind < argc && io_open_image(&ctx, &a.open, argv[optind]) < 0) {
        free(a.cmds);
        return 1;
    }
    last_error = run_commands(&ctx, &a);
    free(a.cmds);
    fflush(stdout);
    ret = ctx.img ? qcowkit_close(ctx.img) : 0;
    if (ret < 0) {
        cli_lib_error(ret, NULL);
        last_error = ret;
    }
    return last_error ? 1 : 0;
}
