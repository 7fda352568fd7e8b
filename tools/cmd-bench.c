/* cmd-bench.c - qcowkit bench: time many reads or writes through the
 * library (qemu-img bench). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

struct bench {
    struct qcowkit_image *img;
    bool write;
    bool flush_each;  /* -t writethrough/directsync: flush after each write */
    bool flush_noop;  /* -t unsafe: flushes do nothing */
    uint64_t count;   /* requests */
    uint64_t bufsize; /* bytes per request */
    uint64_t start;   /* offset of the first request */
    uint64_t step;
    uint64_t image_size;
    int pattern;
    uint64_t flush_interval; /* 0: none */
    bool drain;              /* drain in-flight requests before a flush */

    atomic_uint_fast64_t next; /* next request to issue */
    atomic_bool failed;
    /* Requests hold it shared; a draining flush holds it exclusively. */
    pthread_rwlock_t drain_lock;
    pthread_mutex_t err_lock;
};

struct bench_thread {
    struct bench *b;
    pthread_t thread;
    uint8_t *buf;
};

/*
 * The offset of request k as qemu-img 7.2's bench computes it: the first
 * at -o, then each step further, wrapping modulo the image size (so a
 * request near the end can overrun it and fail, as in QEMU 7.2; later
 * QEMUs wrap modulo the image size less the buffer size).
 */
static uint64_t request_offset(const struct bench *b, uint64_t k)
{
    if (k == 0)
        return b->start;
    if (b->image_size == 0)
        return 0;
    return (uint64_t)(((unsigned __int128)b->start +
                       (unsigned __int128)k * b->step) %
                      b->image_size);
}

static void bench_fail(struct bench *b, int err)
{
    const char *msg = qcowkit_errmsg();

    pthread_mutex_lock(&b->err_lock);
    if (!atomic_load(&b->failed))
        cli_error("Failed request: %s", msg && *msg ? msg : strerror(-err));
    atomic_store(&b->failed, true);
    pthread_mutex_unlock(&b->err_lock);
}

static int bench_flush(struct bench *b)
{
    return b->flush_noop ? 0 : qcowkit_flush(b->img);
}

static void *bench_main(void *opaque)
{
    struct bench_thread *t = opaque;
    struct bench *b = t->b;

    while (!atomic_load(&b->failed)) {
        uint64_t k = atomic_fetch_add(&b->next, 1);
        uint64_t offset;
        int err;

        if (k >= b->count)
            break;
        offset = request_offset(b, k);
        pthread_rwlock_rdlock(&b->drain_lock);
        if (b->write) {
            err = qcowkit_pwrite(b->img, t->buf, b->bufsize, offset);
            if (err == 0 && b->flush_each)
                err = bench_flush(b);
        } else {
            err = qcowkit_pread(b->img, t->buf, b->bufsize, offset);
        }
        pthread_rwlock_unlock(&b->drain_lock);
        if (err < 0) {
            bench_fail(b, err);
            break;
        }
        /* Every flush_interval requests, a flush (after draining). */
        if (b->flush_interval && (k + 1) % b->flush_interval == 0) {
            if (b->drain)
                pthread_rwlock_wrlock(&b->drain_lock);
            err = bench_flush(b);
            if (b->drain)
                pthread_rwlock_unlock(&b->drain_lock);
            if (err < 0) {
                bench_fail(b, err);
                break;
            }
        }
    }
    return NULL;
}

/* Run the requests on up to depth threads; returns 0 or -1. */
static int bench_run(struct bench *b, uint64_t depth)
{
    uint64_t n = depth < b->count ? depth : b->count, started = 0, i;
    struct bench_thread *t;
    int ret = 0;

    if (n == 0)
        return 0;
    t = calloc(n, sizeof *t);
    if (!t) {
        cli_error("out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        t[i].b = b;
        t[i].buf = malloc(b->bufsize ? b->bufsize : 1);
        if (!t[i].buf) {
            cli_error("out of memory");
            ret = -1;
            goto out;
        }
        memset(t[i].buf, b->pattern, b->bufsize);
    }
    if (n == 1) {
        bench_main(&t[0]);
    } else {
        /* Threads that cannot be made leave their share to the others. */
        for (i = 0; i < n; i++) {
            if (pthread_create(&t[i].thread, NULL, bench_main, &t[i]))
                break;
            started++;
        }
        if (started == 0)
            bench_main(&t[0]);
        for (i = 0; i < started; i++)
            pthread_join(t[i].thread, NULL);
    }
    if (atomic_load(&b->failed))
        ret = -1;
out:
    for (i = 0; i < n; i++)
        free(t[i].buf);
    free(t);
    return ret;
}

static int parse_size_opt(const char *arg, const char *what, uint64_t max,
                          uint64_t *out)
{
    const char *why;

    if (cli_parse_size(arg, max, out, &why) == 0)
        return 0;
    cli_error("Invalid %s specified. You may use k, M, G, T, P or E "
              "suffixes for",
              what);
    cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and "
              "exabytes.");
    return -1;
}

static int parse_int_opt(const char *arg, long long min, long long max,
                         long long *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(arg, &end, 0);
    if (errno || end == arg || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

enum { OPT_PATTERN = 256, OPT_FLUSH_INTERVAL, OPT_NO_DRAIN };

struct bench_args {
    struct cli_common co;
    const char *cache, *aio, *path;
    uint64_t depth, step;
    bool native;
};

/* An integer option within [min, max], or the message and -1. */
static int int_opt(const char *what, long long min, long long max,
                   uint64_t *out)
{
    long long v;

    if (parse_int_opt(optarg, min, max, &v) < 0) {
        cli_error("Invalid %s specified", what);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* One option: CLI_NEXT_OPTION or the exit code. */
static int bench_option(struct bench_args *a, struct bench *b, char **argv,
                        int c)
{
    uint64_t v;
    int err = 0;

    switch (c) {
    case 'c':
        err = int_opt("request count", 0, INT_MAX, &b->count);
        break;
    case 'd':
        err = int_opt("queue depth", 1, INT_MAX, &a->depth);
        break;
    case 'n':
        a->native = true;
        break;
    case 'i':
        if (strcmp(optarg, "threads") != 0 && strcmp(optarg, "native") != 0 &&
            strcmp(optarg, "io_uring") != 0) {
            cli_error("Invalid aio option: %s", optarg);
            return 1;
        }
        a->aio = optarg;
        break;
    case 'o':
        err = parse_size_opt(optarg, "offset", INT64_MAX, &b->start);
        break;
    case 'q':
        break; /* qemu-img bench prints its lines even with -q */
    case 's':
        err = parse_size_opt(optarg, "buffer size", INT_MAX, &b->bufsize);
        break;
    case 'S':
        err = parse_size_opt(optarg, "step_size", INT_MAX, &a->step);
        break;
    case 't':
        a->cache = optarg;
        if (!cli_cache_mode_valid(optarg)) {
            cli_error("Invalid cache mode");
            return 1;
        }
        break;
    case 'w':
        b->write = true;
        break;
    case OPT_PATTERN:
        err = int_opt("pattern byte", 0, 0xff, &v);
        if (err == 0)
            b->pattern = (int)v;
        break;
    case OPT_FLUSH_INTERVAL:
        err = int_opt("flush interval", 0, INT_MAX, &b->flush_interval);
        break;
    case OPT_NO_DRAIN:
        b->drain = false;
        break;
    default:
        return cli_common_option(&a->co, argv, c);
    }
    return err < 0 ? 1 : CLI_NEXT_OPTION;
}

/* Returns CLI_NEXT_OPTION when the bench is to run, else the exit code. */
static int parse_bench_args(int argc, char **argv, struct bench_args *a,
                            struct bench *b)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_FORCE_SHARE,
        {"pattern", required_argument, NULL, OPT_PATTERN},
        {"flush-interval", required_argument, NULL, OPT_FLUSH_INTERVAL},
        {"no-drain", no_argument, NULL, OPT_NO_DRAIN},
        {NULL, 0, NULL, 0},
    };
    int c, ret;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "bench");
    a->cache = "writeback";
    a->depth = 64;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hc:d:f:ni:o:qs:S:t:wU", longopts,
                            NULL)) != -1)
        if ((ret = bench_option(a, b, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    if (argc - optind != 1) {
        cli_usage_error("bench", "Expecting one image file name");
        return 1;
    }
    a->path = argv[optind];
    return CLI_NEXT_OPTION;
}

/* Options that exclude each other; prints why and returns -1. */
static int check_bench_args(const struct bench_args *a, const struct bench *b)
{
    if (b->flush_interval && !b->write) {
        cli_error("--flush-interval is only available in write tests");
        return -1;
    }
    if (b->flush_interval && b->flush_interval < a->depth) {
        cli_error("Flush interval can't be smaller than depth");
        return -1;
    }
    return 0;
}

/* The checks made when QEMU opens the image; prints why and returns -1. */
static int check_bench_open(const struct bench_args *a, const struct bench *b)
{
    /* The library has no O_DIRECT; -t none and directsync are accepted
     * as QEMU accepts them, and native AIO needs them as QEMU's does. */
    if ((a->native || (a->aio && strcmp(a->aio, "native") == 0)) &&
        strcmp(a->cache, "none") != 0 && strcmp(a->cache, "directsync") != 0) {
        cli_error("Could not open '%s': aio=native was specified, but it "
                  "requires cache.direct=on, which was not specified.",
                  a->path);
        return -1;
    }
    if (a->co.force_share && b->write) {
        cli_error("Could not open '%s': force-share=on can only be used with "
                  "read-only images",
                  a->path);
        return -1;
    }
    return 0;
}

/* Print the plan, run it and the time it took. */
static int bench_timed(struct bench *b, uint64_t depth)
{
    struct timespec t0, t1;

    printf("Sending %" PRIu64 " %s requests, %" PRIu64 " bytes each, %" PRIu64
           " in parallel (starting at offset %" PRIu64 ", step size %" PRIu64
           ")\n",
           b->count, b->write ? "write" : "read", b->bufsize, depth, b->start,
           b->step);
    if (b->flush_interval)
        printf("Sending flush every %" PRIu64 " requests\n", b->flush_interval);
    fflush(stdout);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bench_run(b, depth) < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("Run completed in %3.3f seconds.\n",
           (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    enum qcowkit_format format;
    struct bench b;
    unsigned flags = QCOWKIT_OPEN_RDONLY;
    int ret;

    memset(&b, 0, sizeof b);
    b.count = 75000;
    b.bufsize = 4096;
    b.drain = true;
    ret = parse_bench_args(argc, argv, &a, &b);
    if (ret != CLI_NEXT_OPTION)
        return ret;
    if (check_bench_args(&a, &b) < 0 ||
        cli_parse_format(a.co.fmt, &format) < 0 || check_bench_open(&a, &b) < 0)
        return 1;
    b.flush_each = strcmp(a.cache, "writethrough") == 0 ||
                   strcmp(a.cache, "directsync") == 0;
    b.flush_noop = strcmp(a.cache, "unsafe") == 0;
    if (b.write)
        flags = QCOWKIT_OPEN_RDWR;
    else if (a.co.force_share)
        flags |= QCOWKIT_OPEN_FORCE_SHARE;
    if (cli_open(a.path, format, flags, QCOWKIT_FORMAT_AUTO, &b.img) < 0)
        return 1;
    b.image_size = cli_image_size(b.img);
    b.step = a.step ? a.step : b.bufsize;
    pthread_rwlock_init(&b.drain_lock, NULL);
    pthread_mutex_init(&b.err_lock, NULL);
    ret = bench_timed(&b, a.depth) == 0 ? 0 : 1;
    /* Closing flushes (qemu-img closes with cache=writeback too). */
    if (qcowkit_close(b.img) < 0 && ret == 0) {
        cli_lib_error(-EIO, a.path);
        ret = 1;
    }
    pthread_rwlock_destroy(&b.drain_lock);
    pthread_mutex_destroy(&b.err_lock);
    return ret;
}
