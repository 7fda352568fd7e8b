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

int cmd_bench(int argc, char **argv)
{
    enum { OPT_PATTERN = 256, OPT_FLUSH_INTERVAL, OPT_NO_DRAIN };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"force-share", no_argument, NULL, 'U'},
        {"pattern", required_argument, NULL, OPT_PATTERN},
        {"flush-interval", required_argument, NULL, OPT_FLUSH_INTERVAL},
        {"no-drain", no_argument, NULL, OPT_NO_DRAIN},
        {NULL, 0, NULL, 0},
    };
    const char *fmt = NULL, *cache = "writeback", *aio = NULL, *path;
    enum qcowkit_format format;
    struct bench b;
    struct timespec t0, t1;
    long long v;
    uint64_t depth = 64, step = 0;
    unsigned flags = QCOWKIT_OPEN_RDONLY;
    bool force_share = false, native = false;
    int c, ret = 1;

    memset(&b, 0, sizeof b);
    b.count = 75000;
    b.bufsize = 4096;
    b.drain = true;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hc:d:f:ni:o:qs:S:t:wU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_int_opt(optarg, 0, INT_MAX, &v) < 0) {
                cli_error("Invalid request count specified");
                return 1;
            }
            b.count = (uint64_t)v;
            break;
        case 'd':
            if (parse_int_opt(optarg, 1, INT_MAX, &v) < 0) {
                cli_error("Invalid queue depth specified");
                return 1;
            }
            depth = (uint64_t)v;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'n':
            native = true;
            break;
        case 'i':
            if (strcmp(optarg, "threads") != 0 &&
                strcmp(optarg, "native") != 0 &&
                strcmp(optarg, "io_uring") != 0) {
                cli_error("Invalid aio option: %s", optarg);
                return 1;
            }
            aio = optarg;
            break;
        case 'o':
            if (parse_size_opt(optarg, "offset", INT64_MAX, &b.start) < 0)
                return 1;
            break;
        case 'q':
            break; /* qemu-img bench prints its lines even with -q */
        case 's':
            if (parse_size_opt(optarg, "buffer size", INT_MAX, &b.bufsize) < 0)
                return 1;
            break;
        case 'S':
            if (parse_size_opt(optarg, "step_size", INT_MAX, &step) < 0)
                return 1;
            break;
        case 't':
            cache = optarg;
            if (strcmp(cache, "none") != 0 && strcmp(cache, "writeback") != 0 &&
                strcmp(cache, "writethrough") != 0 &&
                strcmp(cache, "directsync") != 0 &&
                strcmp(cache, "unsafe") != 0) {
                cli_error("Invalid cache mode");
                return 1;
            }
            break;
        case 'w':
            b.write = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPT_PATTERN:
            if (parse_int_opt(optarg, 0, 0xff, &v) < 0) {
                cli_error("Invalid pattern byte specified");
                return 1;
            }
            b.pattern = (int)v;
            break;
        case OPT_FLUSH_INTERVAL:
            if (parse_int_opt(optarg, 0, INT_MAX, &v) < 0) {
                cli_error("Invalid flush interval specified");
                return 1;
            }
            b.flush_interval = (uint64_t)v;
            break;
        case OPT_NO_DRAIN:
            b.drain = false;
            break;
        case 'h':
            printf("usage: %s %s\n", CLI_NAME, cli_usage("bench"));
            return 0;
        default:
            return cli_bad_option("bench", argv, c);
        }
    }
    if (argc - optind != 1) {
        cli_usage_error("bench", "Expecting one image file name");
        return 1;
    }
    path = argv[optind];
    if (b.flush_interval && !b.write) {
        cli_error("--flush-interval is only available in write tests");
        return 1;
    }
    if (b.flush_interval && b.flush_interval < depth) {
        cli_error("Flush interval can't be smaller than depth");
        return 1;
    }
    if (cli_parse_format(fmt, &format) < 0)
        return 1;
    /* The library has no O_DIRECT; -t none and directsync are accepted
     * as QEMU accepts them, and native AIO needs them as QEMU's does. */
    if ((native || (aio && strcmp(aio, "native") == 0)) &&
        strcmp(cache, "none") != 0 && strcmp(cache, "directsync") != 0) {
        cli_error("Could not open '%s': aio=native was specified, but it "
                  "requires cache.direct=on, which was not specified.",
                  path);
        return 1;
    }
    if (force_share && b.write) {
        cli_error("Could not open '%s': force-share=on can only be used with "
                  "read-only images",
                  path);
        return 1;
    }
    b.flush_each =
        strcmp(cache, "writethrough") == 0 || strcmp(cache, "directsync") == 0;
    b.flush_noop = strcmp(cache, "unsafe") == 0;
    if (b.write)
        flags = QCOWKIT_OPEN_RDWR;
    else if (force_share)
        flags |= QCOWKIT_OPEN_FORCE_SHARE;
    if (cli_open(path, format, flags, QCOWKIT_FORMAT_AUTO, &b.img) < 0)
        return 1;
    b.image_size = cli_image_size(b.img);
    b.step = step ? step : b.bufsize;
    pthread_rwlock_init(&b.drain_lock, NULL);
    pthread_mutex_init(&b.err_lock, NULL);

    printf("Sending %" PRIu64 " %s requests, %" PRIu64 " bytes each, %" PRIu64
           " in parallel (starting at offset %" PRIu64 ", step size %" PRIu64
           ")\n",
           b.count, b.write ? "write" : "read", b.bufsize, depth, b.start,
           b.step);
    if (b.flush_interval)
        printf("Sending flush every %" PRIu64 " requests\n", b.flush_interval);
    fflush(stdout);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bench_run(&b, depth) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("Run completed in %3.3f seconds.\n",
               (double)(t1.tv_sec - t0.tv_sec) +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        ret = 0;
    }
    /* Closing flushes (qemu-img closes with cache=writeback too). */
    if (qcowkit_close(b.img) < 0 && ret == 0) {
        cli_lib_error(-EIO, path);
        ret = 1;
    }
    pthread_rwlock_destroy(&b.drain_lock);
    pthread_mutex_destroy(&b.err_lock);
    return ret;
}
