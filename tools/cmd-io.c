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

#include "cli.h"

#define REQUEST_MAX_BYTES UINT64_C(2147483136) /* QEMU's per-request limit */
#define SECTOR            512u

struct io_ctx {
    struct qcowkit_image *img;
    bool read_only;
    bool encrypted; /* the top image is AES-encrypted */
    bool quit;
};

struct io_cmd {
    const char *name;
    const char *altname;
    int (*fn)(struct io_ctx *ctx, int argc, char **argv);
    int argmin, argmax; /* argmax -1: no limit */
    const char *args;   /* NULL: none shown */
    const char *oneline;
};

static const struct io_cmd *find_cmd(const char *name);

static void usage(const struct io_cmd *c)
{
    printf("%s %s -- %s\n", c->name, c->args ? c->args : "", c->oneline);
}

/* qemu-io's cvtnum(): a size with suffixes; negative errno on error. */
static int64_t cvtnum(const char *s)
{
    uint64_t v;
    const char *why;
    int err = cli_parse_size(s, INT64_MAX, &v, &why);

    return err < 0 ? err : (int64_t)v;
}

static void print_cvtnum_err(int64_t rc, const char *arg)
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

static int parse_pattern(const char *arg)
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

static double now(void)
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

static void print_report(const char *op, double t, int64_t offset,
                         int64_t count, int64_t total, int cnt, bool compact)
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

static void dump_buffer(const uint8_t *buf, int64_t offset, int64_t len)
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
static int check_request(struct io_ctx *ctx, int64_t offset, int64_t count)
{
    uint64_t size = cli_image_size(ctx->img);

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

    *offset = cvtnum(argv[optind]);
    if (*offset < 0) {
        print_cvtnum_err(*offset, argv[optind]);
        return -EINVAL;
    }
    *count = cvtnum(count_arg);
    if (*count < 0) {
        print_cvtnum_err(*count, count_arg);
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
            r->pattern = parse_pattern(optarg);
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
            usage(me);
            return -EINVAL;
        }
        if (num && (*num = cvtnum(optarg)) < 0) {
            print_cvtnum_err(*num, optarg);
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
    const struct io_cmd *me = find_cmd("read");
    struct read_args r;
    int64_t offset, count;
    double t1, t2;
    uint8_t *buf;
    int ret = parse_read_flags(argc, argv, me, &r);

    if (ret < 0)
        return ret;
    if (optind != argc - 2) {
        usage(me);
        return -EINVAL;
    }
    if (parse_range(argv, true, "", &offset, &count) < 0)
        return -EINVAL;
    if (!r.Pflag && (r.lflag || r.sflag)) {
        usage(me);
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
    t1 = now();
    ret = check_request(ctx, offset, count);
    if (ret == 0 && count)
        ret = qcowkit_pread(ctx->img, buf, (size_t)count, (uint64_t)offset);
    t2 = now();
    if (ret < 0) {
        printf("read failed: %s\n", strerror(-ret));
        goto out;
    }
    if (r.Pflag && r.pattern_count > 0)
        ret = verify_pattern(&r, buf, offset);
    if (r.qflag)
        goto out;
    if (r.vflag)
        dump_buffer(buf, offset, count);
    print_report("read", t2 - t1, offset, count, count, 1, r.Cflag);
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
 * -u lets the library leave zero clusters unallocated.  (With -c, as in
 * qemu-io, the zeros are not compressed.)
 */
static int write_zero_buffer(struct io_ctx *ctx, int64_t offset, int64_t count)
{
    const size_t chunk = 1u << 20;
    uint8_t *zeros = calloc(1, chunk);
    int ret = 0;

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
            w->pattern = parse_pattern(optarg);
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
            usage(me);
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
    int ret = check_request(ctx, offset, count);

    if (ret < 0 || count == 0)
        return ret;
    if (w->zflag && w->uflag)
        ret = qcowkit_pwrite_zeroes(ctx->img, (size_t)count, (uint64_t)offset);
    else if (w->zflag)
        ret = write_zero_buffer(ctx, offset, count);
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
    const struct io_cmd *me = find_cmd("write");
    struct write_args w;
    int64_t offset, count;
    double t1, t2;
    uint8_t *buf = NULL;
    int ret = parse_write_flags(argc, argv, me, &w);

    if (ret < 0)
        return ret;
    if (optind != argc - 2) {
        usage(me);
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

    t1 = now();
    ret = do_write(ctx, &w, buf, offset, count);
    t2 = now();
    if (ret < 0) {
        printf("write failed: %s\n", strerror(-ret));
        /* Say why a probed raw image refused it (qemu-io warned at open). */
        if (ret == -EPERM)
            cli_lib_error(ret, NULL);
    } else if (!w.qflag) {
        print_report("wrote", t2 - t1, offset, count, count, 1, w.Cflag);
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
    cli_cvtstr((double)cli_image_size(ctx->img), s, sizeof s);
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
static int is_allocated(struct io_ctx *ctx, uint64_t offset, uint64_t bytes,
                        uint64_t *pnum)
{
    struct qcowkit_extent e;
    uint64_t size = cli_image_size(ctx->img);
    int err;

    if (offset >= size || bytes == 0) {
        *pnum = 0;
        return 0;
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
    uint64_t size = cli_image_size(ctx->img), offset = 0;

    (void)argc;
    (void)argv;
    if (size == 0)
        return 0;
    do {
        uint64_t num, more;
        char s1[64], s2[64];
        int first = is_allocated(ctx, offset, size - offset, &num), ret;

        if (first < 0) {
            fflush(stdout);
            fprintf(stderr, "Failed to get allocation status: %s\n",
                    strerror(-first));
            return first;
        }
        /* Merge runs with the same status, as qemu-io does. */
        while (offset + num < size) {
            ret = is_allocated(ctx, offset + num, size - offset - num, &more);
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

    offset = cvtnum(argv[1]);
    if (offset < 0) {
        print_cvtnum_err(offset, argv[1]);
        return -EINVAL;
    }
    if (argc == 3) {
        count = cvtnum(argv[2]);
        if (count < 0) {
            print_cvtnum_err(count, argv[2]);
            return -EINVAL;
        }
    }
    remaining = count;
    for (int64_t at = offset; remaining > 0;) {
        uint64_t num;
        int ret = is_allocated(ctx, (uint64_t)at, (uint64_t)remaining, &num);

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

static const struct io_cmd io_cmds[] = {
    {"alloc", NULL, alloc_f, 1, 2, "offset [count]",
     "checks if offset is allocated in the file"},
    {"flush", "f", flush_f, 0, 0, NULL, "flush all in-core file state to disk"},
    {"help", "?", help_f, 0, 1, "[command]", "help for one or all commands"},
    {"info", "i", info_f, 0, 0, NULL,
     "prints information about the current file"},
    {"length", "l", length_f, 0, 0, NULL,
     "gets the length of the current file"},
    {"map", NULL, map_f, 0, 0, "", "prints the allocated areas of a file"},
    {"quit", "q", quit_f, 0, 0, NULL, "exit the program"},
    {"read", "r", read_f, 2, -1,
     "[-abCqv] [-P pattern [-s off] [-l len]] off len",
     "reads a number of bytes at a specified offset"},
    {"write", "w", write_f, 2, -1,
     "[-bcCfnquz] [-P pattern | -s source_file] off len",
     "writes a number of bytes at a specified offset"},
};

#define N_IO_CMDS (sizeof io_cmds / sizeof io_cmds[0])

static const struct io_cmd *find_cmd(const char *name)
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
    const struct io_cmd *c = find_cmd(argv[1]);
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
    c = find_cmd(argv[0]);
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
    ret = c->fn(ctx, argc, argv);
    fflush(stdout);
out:
    free(argv);
    free(copy);
    return ret;
}

/*
 * An empty qcow file at a new name in $TMPDIR (default /tmp), of the
 * image's size, backed by the image at abs_path.  *tmp gets the name.
 */
static int make_overlay(const char *abs_path, const struct qcowkit_info *info,
                        char **tmp)
{
    const char *dir = getenv("TMPDIR");
    struct qcowkit_create_opts co;
    int fd, err;

    if (!dir || !*dir)
        dir = "/tmp";
    if (asprintf(tmp, "%s/qcowkit-snapshot.XXXXXX", dir) < 0) {
        *tmp = NULL;
        cli_error("out of memory");
        return -ENOMEM;
    }
    fd = mkstemp(*tmp);
    if (fd < 0) {
        err = -errno;
        cli_error("%s: cannot create the snapshot overlay: %s", *tmp,
                  strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return err;
    }
    close(fd);
    qcowkit_create_opts_init(&co);
    co.size = info->virtual_size;
    co.backing_file = abs_path;
    co.cluster_size = 65536; /* as QEMU's qcow2 overlay */
    err = qcowkit_create(*tmp, &co, QCOWKIT_IO_TRUNC);
    if (err < 0)
        cli_lib_error(err, NULL);
    return err;
}

/*
 * Open the overlay over the image spec names, then unlink it: the open
 * handle keeps it, and nothing is left behind however the command ends.
 * Signals that would end it are held back until the name is gone.
 */
static int open_overlay(const struct cli_image_spec *spec, const char *abs,
                        const struct qcowkit_info *info,
                        struct qcowkit_image **img)
{
    struct cli_image_spec ov;
    sigset_t stop, old;
    char *tmp = NULL;
    int err;

    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGQUIT);
    sigprocmask(SIG_BLOCK, &stop, &old);
    err = make_overlay(abs, info, &tmp);
    if (err == 0) {
        /* The key of the image, if any, reaches it through the chain. */
        memset(&ov, 0, sizeof ov);
        ov.arg = spec->arg;
        ov.filename = tmp;
        ov.format = QCOWKIT_FORMAT_QCOW;
        ov.key_secret =
            spec->key_secret ? spec->key_secret : spec->backing_key_secret;
        err = cli_open_spec(&ov, QCOWKIT_OPEN_RDWR, info->format,
                            CLI_OPEN_NEED_KEY, img);
    }
    if (tmp)
        unlink(tmp);
    free(tmp);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return err;
}

/*
 * qemu-io -s (--snapshot): writes go to a temporary qcow overlay backed
 * by the image (its absolute path, its format); the image itself is only
 * read, with a shared lock, and stays as it was.
 */
static int open_snapshot(const char *arg, bool image_opts,
                         enum qcowkit_format format, struct qcowkit_image **img,
                         bool *encrypted)
{
    struct cli_image_spec spec;
    struct qcowkit_image *base;
    struct qcowkit_info info;
    char *abs = NULL;
    int err;

    if (cli_image_spec_parse(arg, image_opts, format, &spec) < 0)
        return -EINVAL;
    err = cli_open_spec(&spec, QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_AUTO,
                        CLI_OPEN_NEED_KEY, &base);
    if (err == 0) {
        err = cli_get_info(base, &info);
        if (err < 0)
            cli_lib_error(err, spec.filename);
        qcowkit_close(base);
    }
    if (err == 0 && !(abs = realpath(spec.filename, NULL))) {
        err = -errno;
        cli_error("%s: %s", spec.filename, strerror(errno));
    }
    if (err == 0)
        err = open_overlay(&spec, abs, &info, img);
    *encrypted = err == 0 && info.crypt_method;
    free(abs);
    cli_image_spec_free(&spec);
    return err;
}

struct io_args {
    struct cli_common co;
    const char **cmds; /* -c, in order */
    int ncmds;
    bool read_only, snapshot;
};

/* Returns CLI_NEXT_OPTION when the commands are to run, else the exit
 * code (a->cmds is freed then). */
static int parse_io_args(int argc, char **argv, struct io_args *a)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_OBJECT,
        {"cmd", required_argument, NULL, 'c'},
        CLI_LONGOPT_FORMAT,
        {"read-only", no_argument, NULL, 'r'},
        {"cache", required_argument, NULL, 't'},
        CLI_LONGOPT_FORCE_SHARE,
        CLI_LONGOPT_IMAGE_OPTS,
        {"snapshot", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char **grown;
    int c, ret = CLI_NEXT_OPTION;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "io");
    optind = 0;
    opterr = 0;
    while (ret == CLI_NEXT_OPTION &&
           (c = getopt_long(argc, argv, ":c:f:hnrsSt:TUd:km:i:", longopts,
                            NULL)) != -1) {
        if (c == 'c') {
            grown = realloc(a->cmds, (size_t)(a->ncmds + 1) * sizeof *a->cmds);
            if (!grown) {
                cli_error("out of memory");
                ret = 1;
                break;
            }
            a->cmds = grown;
            a->cmds[a->ncmds++] = optarg;
        } else if (c == 'r') {
            a->read_only = true;
        } else if (c == 's') {
            a->snapshot = true;
        } else if (c > 0 && c < 256 && strchr("nStTdkmi", c)) {
            continue; /* accepted for qemu-io compatibility */
        } else {
            ret = cli_common_option(&a->co, argv, c);
        }
    }
    if (ret == CLI_NEXT_OPTION && optind != argc - 1)
        ret = optind >= argc ? cli_usage_error("io", "Expecting one image "
                                                     "file name")
                             : cli_usage_error("io", "Unexpected argument: %s",
                                               argv[argc - 1]);
    if (ret != CLI_NEXT_OPTION)
        free(a->cmds);
    return ret;
}

/* Open the image as the options say; prints the error and returns -1. */
static int open_io_image(struct io_ctx *ctx, const struct io_args *a,
                         const char *arg)
{
    enum qcowkit_format format;
    struct qcowkit_info info;
    bool image_opts = a->co.image_opts;

    if (cli_parse_format(a->co.fmt, &format) < 0)
        return -1;
    if (a->co.force_share && !ctx->read_only) {
        /* qemu-io's words, before anything is opened. */
        if (image_opts)
            cli_error("can't open: force-share=on can only be used with "
                      "read-only images");
        else
            cli_error("can't open device %s: force-share=on can only be "
                      "used with read-only images",
                      arg);
        return -1;
    }
    /* As qemu-io, an encrypted image opens only with its key.  A
     * read-only snapshot needs no overlay: nothing can be written. */
    if (a->snapshot && !ctx->read_only)
        return open_snapshot(arg, image_opts, format, &ctx->img,
                             &ctx->encrypted);
    if (cli_open_image(
            arg, image_opts, format,
            (ctx->read_only ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR) |
                (a->co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0),
            QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &ctx->img, NULL) < 0)
        return -1;
    ctx->encrypted = cli_get_info(ctx->img, &info) == 0 && info.crypt_method;
    return 0;
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
    ctx.read_only = a.read_only;
    if (open_io_image(&ctx, &a, argv[optind]) < 0) {
        free(a.cmds);
        return 1;
    }
    last_error = run_commands(&ctx, &a);
    free(a.cmds);
    fflush(stdout);
    ret = qcowkit_close(ctx.img);
    if (ret < 0) {
        cli_lib_error(ret, NULL);
        last_error = ret;
    }
    return last_error ? 1 : 0;
}
