/*
 * test-threads: four threads share one image handle.  Each reads and
 * writes its own region (checked against its own model) and all of them
 * read a shared region written beforehand.  Phases: regions on cluster
 * boundaries; regions whose edges share clusters; the same on an overlay
 * over a backing file (concurrent copy-on-write of shared clusters).
 */
#include <pthread.h>

#include "test.h"

#define NTHREADS 4
#define SHARED   (256 * 1024)

struct phase {
    const char *label;
    uint32_t cs;
    uint64_t region; /* bytes per thread */
    uint64_t skew;   /* region starts are shifted by this much */
    int backing;     /* overlay over a raw backing file */
    uint64_t ops;    /* per thread */
};

struct shared_ctx {
    const struct phase *ph;
    struct qcowkit_image *img;
    uint64_t size;
    const uint8_t *shared; /* contents of [0, SHARED) */
};

struct worker {
    struct shared_ctx *ctx;
    int id;
    uint64_t start, len;
    uint8_t *model; /* contents of [start, start + len) */
    char err[512];
    pthread_t th;
};

#define WFAIL(w, ...)                                                          \
    do {                                                                       \
        int n_ = snprintf((w)->err, sizeof((w)->err), "thread %d: ", (w)->id); \
        snprintf((w)->err + n_, sizeof((w)->err) - (size_t)n_, __VA_ARGS__);   \
        return NULL;                                                           \
    } while (0)

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared_ctx *c = w->ctx;
    uint32_t cs = c->ph->cs;
    struct test_rng rng;
    size_t maxn = 3 * cs;
    uint8_t *buf = test_xmalloc(maxn > 65536 ? maxn : 65536);
    uint8_t *rb = test_xmalloc(maxn > 65536 ? maxn : 65536);
    int r;

    test_rng_seed(&rng, 1000 + (uint64_t)w->id * 77 + cs);
    for (uint64_t step = 0; step < c->ph->ops; step++) {
        uint64_t op = test_rng_below(&rng, 100);
        size_t n = (size_t)test_rng_range(&rng, 1, maxn);
        uint64_t rel;

        if (n > w->len)
            n = (size_t)w->len;
        rel = test_rng_below(&rng, w->len - n + 1);
        if (op < 40) {
            test_rng_fill(&rng, buf, n);
            r = qcowkit_pwrite(c->img, buf, n, w->start + rel);
            if (r < 0)
                WFAIL(w, "pwrite(%zu at %" PRIu64 ") = %d: %s", n,
                      w->start + rel, r, qcowkit_errmsg());
            memcpy(w->model + rel, buf, n);
        } else if (op < 70) {
            r = qcowkit_pread(c->img, rb, n, w->start + rel);
            if (r < 0)
                WFAIL(w, "pread = %d: %s", r, qcowkit_errmsg());
            if (memcmp(rb, w->model + rel, n) != 0) {
                size_t d = 0;
                test_memdiff_(rb, w->model + rel, n, &d);
                WFAIL(w,
                      "step %" PRIu64 ": guest offset %" PRIu64
                      " reads 0x%02x, want 0x%02x",
                      step, w->start + rel + d, rb[d], w->model[rel + d]);
            }
        } else if (op < 82) {
            uint64_t so = test_rng_below(&rng, SHARED - n + 1);
            r = qcowkit_pread(c->img, rb, n, so);
            if (r < 0)
                WFAIL(w, "pread(shared) = %d: %s", r, qcowkit_errmsg());
            if (memcmp(rb, c->shared + so, n) != 0)
                WFAIL(w, "shared region read at %" PRIu64 " is wrong", so);
        } else if (op < 88) {
            r = qcowkit_pwrite_zeroes(c->img, n, w->start + rel);
            if (r < 0)
                WFAIL(w, "pwrite_zeroes = %d: %s", r, qcowkit_errmsg());
            memset(w->model + rel, 0, n);
        } else if (op < 93) {
            /* A compressed cluster lying wholly inside the region. */
            uint64_t first = (w->start + cs - 1) / cs;
            uint64_t last = (w->start + w->len) / cs; /* exclusive */
            uint64_t cl;
            if (last <= first)
                continue;
            cl = first + test_rng_below(&rng, last - first);
            test_compressible(buf, cs, (uint32_t)step);
            r = qcowkit_pwrite_compressed(c->img, buf, cs, cl * cs);
            if (r < 0)
                WFAIL(w, "pwrite_compressed = %d: %s", r, qcowkit_errmsg());
            memcpy(w->model + (cl * cs - w->start), buf, cs);
        } else if (op < 96) {
            r = qcowkit_flush(c->img);
            if (r < 0)
                WFAIL(w, "flush = %d: %s", r, qcowkit_errmsg());
        } else {
            struct qcowkit_extent ext;
            r = qcowkit_block_status(c->img, w->start + rel, n, &ext);
            if (r < 0)
                WFAIL(w, "block_status = %d: %s", r, qcowkit_errmsg());
            if (ext.offset != w->start + rel || ext.length == 0 ||
                ext.length > n)
                WFAIL(w, "block_status returned a bad extent");
        }
    }
    free(buf);
    free(rb);
    return NULL;
}

static void check_all(struct qcowkit_image *img, struct shared_ctx *c,
                      struct worker *ws, const uint8_t *gaps)
{
    uint8_t *got = test_xmalloc(c->size);
    uint8_t *want = test_xmalloc(c->size);

    memcpy(want, gaps, c->size);
    memcpy(want, c->shared, SHARED);
    for (int i = 0; i < NTHREADS; i++)
        memcpy(want + ws[i].start, ws[i].model, ws[i].len);
    CHECK_OK(qcowkit_pread(img, got, c->size, 0));
    CHECK_MEM_EQ(got, want, c->size);
    free(got);
    free(want);
}

static void run_phase(const struct phase *ph)
{
    uint64_t size =
        (SHARED + NTHREADS * ph->region + 2 * ph->cs + 511) / 512 * 512;
    uint8_t *initial = test_xmalloc(size); /* backing contents or zeros */
    uint8_t *shared = test_xmalloc(SHARED);
    char *dir = NULL, *name;
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    struct shared_ctx ctx;
    struct worker ws[NTHREADS];

    memset(initial, 0, size);
    dir = test_mkdtemp();
    name = test_path(dir, "t.qcow");
    if (ph->backing) {
        char *b = test_path(dir, "b.raw");
        test_pattern(initial, size, 0, 99);
        test_write_file(b, initial, size);
        free(b);
    }
    img = test_mem_image(size, ph->cs, ph->backing ? "b.raw" : NULL, name, &io);
    test_pattern(shared, SHARED, 0, 3);
    CHECK_OK(qcowkit_pwrite(img, shared, SHARED, 0));

    ctx.ph = ph;
    ctx.img = img;
    ctx.size = size;
    ctx.shared = shared;
    for (int i = 0; i < NTHREADS; i++) {
        ws[i].ctx = &ctx;
        ws[i].id = i;
        ws[i].start = SHARED + ph->skew + i * ph->region;
        ws[i].len = ph->region;
        ws[i].model = test_xmalloc(ph->region);
        memcpy(ws[i].model, initial + ws[i].start, ph->region);
        ws[i].err[0] = 0;
    }
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]), 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ(pthread_join(ws[i].th, NULL), 0);
    for (int i = 0; i < NTHREADS; i++)
        if (ws[i].err[0])
            TEST_FAIL("%s: %s", ph->label, ws[i].err);

    check_all(img, &ctx, ws, initial);
    CHECK_OK(qcowkit_close(img));
    img = test_open_io(io, name, QCOWKIT_OPEN_RDONLY);
    check_all(img, &ctx, ws, initial);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);

    for (int i = 0; i < NTHREADS; i++)
        free(ws[i].model);
    free(initial);
    free(shared);
    free(name);
    free(dir);
}

/*
 * Images over one backend share its lock: threads opening and closing
 * them at once must leave the backend holding exactly what the open
 * images need (here: nothing, once all are closed).
 */
struct lock_log {
    struct qcowkit_io *inner;
    pthread_mutex_t guard;
    unsigned mode;
};

static int log_pread(void *o, void *buf, size_t n, uint64_t off)
{
    return qcowkit_io_pread(((struct lock_log *)o)->inner, buf, n, off);
}

static int log_pwrite(void *o, const void *buf, size_t n, uint64_t off)
{
    return qcowkit_io_pwrite(((struct lock_log *)o)->inner, buf, n, off);
}

static int log_flush(void *o)
{
    return qcowkit_io_flush(((struct lock_log *)o)->inner);
}

static int log_get_size(void *o, uint64_t *size)
{
    return qcowkit_io_get_size(((struct lock_log *)o)->inner, size);
}

static int log_truncate(void *o, uint64_t size)
{
    return qcowkit_io_truncate(((struct lock_log *)o)->inner, size);
}

static int log_lock(void *o, unsigned mode, const char **why)
{
    struct lock_log *l = o;

    (void)why;
    pthread_mutex_lock(&l->guard);
    l->mode = mode;
    pthread_mutex_unlock(&l->guard);
    return 0;
}

static void *open_close_loop(void *arg)
{
    struct qcowkit_io *io = arg;

    for (int i = 0; i < 200; i++) {
        struct qcowkit_image *img = test_open_io_ex(
            io, "shared", QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_QCOW, 0);
        CHECK_OK(qcowkit_close(img));
    }
    return NULL;
}

static void shared_backend_locks(void)
{
    struct qcowkit_io_ops ops;
    struct qcowkit_io *io;
    struct lock_log l = {.inner = test_mem_io(NULL, 0)};
    struct qcowkit_create_opts co;
    pthread_t th[NTHREADS];

    printf("phase: lock of a backend shared by images on %d threads\n",
           NTHREADS);
    test_create_opts(&co, 1 << 20, 4096, NULL);
    CHECK_OK(qcowkit_create_io(l.inner, "shared", &co));
    pthread_mutex_init(&l.guard, NULL);
    qcowkit_io_ops_init(&ops);
    ops.pread = log_pread;
    ops.pwrite = log_pwrite;
    ops.flush = log_flush;
    ops.get_size = log_get_size;
    ops.truncate = log_truncate;
    ops.lock = log_lock;
    CHECK_OK(qcowkit_io_new(&ops, &l, "shared", &io));
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, open_close_loop, io) == 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    CHECK_EQ(l.mode, QCOWKIT_IO_LOCK_NONE);
    qcowkit_io_close(io);
    qcowkit_io_close(l.inner);
    pthread_mutex_destroy(&l.guard);
}

int main(void)
{
    static const struct phase phases[] = {
        {"aligned regions, 4K clusters", 4096, 512 * 1024, 0, 0, 1500},
        {"regions sharing clusters, 4K", 4096, 300000, 1000, 0, 1500},
        {"regions sharing clusters, 512B", 512, 100001, 77, 0, 1500},
        {"COW of shared clusters on a backing file, 64K", 65536, 200003, 12345,
         1, 600},
        {"COW of shared clusters on a backing file, 512B", 512, 65537, 300, 1,
         1500},
    };

    test_init(600);
    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
        run_phase(&phases[i]);
    shared_backend_locks();
    printf("test-threads: ok\n");
    return 0;
}
