/*
 * test-flush-race: a flush must make durable every write that returned
 * before the flush was called, whichever thread wrote and whatever ran
 * during the write's transfer (include/qcowkit.h, DURABILITY).
 *
 * The image sits on a "gate" backend, a custom backend over a crash
 * backend over memory.  The gate can hold a chosen pwrite before it
 * reaches the crash backend until the test lets it go, or delay pwrites
 * at random.  The crash backend keeps the state as of its last flush, so
 * what a power loss would leave (CRASH_DROP_ALL) can be opened
 * and read at any time.
 *
 *   1. Deterministic: an in-place write is held mid-transfer, a flush
 *      runs and returns, the write is let go and returns; a second flush
 *      must make it durable.  Also with dirty tables, and on raw images.
 *   2. Randomized: writer threads (in-place, allocating, compressed and
 *      zero writes to slots they own) and flusher threads; after every
 *      flush that returned 0 the durable state of each slot must be the
 *      newest version completed before the flush began, or a later one.
 *
 * Environment: QCOWKIT_SEED=n replays the randomized part's choices (the
 * thread interleaving itself is up to the scheduler; the seed is printed
 * on failure), QCOWKIT_ITERATIONS=n sets the writes per writer thread,
 * QCOWKIT_FLUSH_RACE=held or random runs only that part.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "test-backends.h"
#include "test.h"

/* ------------------------------------------------------------ the gate */

struct gate {
    struct qcowkit_io *inner;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t hold_len;   /* hold the next pwrite of this length (0: none) */
    bool held;         /* a pwrite is waiting at the gate */
    bool release;      /* let it go */
    unsigned delay_in; /* delay one pwrite in this many (0: never) */
    struct test_rng rng;
};

/* Hold this pwrite until gate_release()?  Takes the armed hold. */
static bool gate_take_hold(struct gate *g, size_t count)
{
    if (g->hold_len == 0 || count != g->hold_len)
        return false;
    g->hold_len = 0;
    g->held = true;
    return true;
}

static useconds_t gate_delay(struct gate *g)
{
    if (g->delay_in == 0 || test_rng_below(&g->rng, g->delay_in) != 0)
        return 0;
    return (useconds_t)test_rng_range(&g->rng, 1, 300);
}

static int gate_pwrite(void *opaque, const void *buf, size_t count,
                       uint64_t offset)
{
    struct gate *g = opaque;
    useconds_t delay;

    pthread_mutex_lock(&g->lock);
    if (gate_take_hold(g, count)) {
        pthread_cond_broadcast(&g->cond);
        while (!g->release)
            pthread_cond_wait(&g->cond, &g->lock);
        g->held = false;
        g->release = false;
    }
    delay = gate_delay(g);
    pthread_mutex_unlock(&g->lock);
    if (delay)
        usleep(delay); /* widen the window of an unlocked transfer */
    return qcowkit_io_pwrite(g->inner, buf, count, offset);
}

static int gate_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct gate *g = opaque;
    return qcowkit_io_pread(g->inner, buf, count, offset);
}

static int gate_flush(void *opaque)
{
    struct gate *g = opaque;
    return qcowkit_io_flush(g->inner);
}

static int gate_get_size(void *opaque, uint64_t *size)
{
    struct gate *g = opaque;
    return qcowkit_io_get_size(g->inner, size);
}

static int gate_truncate(void *opaque, uint64_t size)
{
    struct gate *g = opaque;
    return qcowkit_io_truncate(g->inner, size);
}

static const struct qcowkit_io_ops gate_ops = {
    .struct_size = sizeof(struct qcowkit_io_ops),
    .pread = gate_pread,
    .pwrite = gate_pwrite,
    .flush = gate_flush,
    .get_size = gate_get_size,
    .truncate = gate_truncate,
};

/* The stack: memory <- crash <- gate (the gate is what the image uses). */
struct stack {
    struct qcowkit_io *mem, *crash, *io;
    struct gate gate;
};

static void stack_open(struct stack *s, const uint8_t *bytes, size_t len)
{
    memset(s, 0, sizeof *s);
    s->mem = test_mem_io(bytes, len);
    CHECK_OK(crash_backend_new(s->mem, &s->crash));
    s->gate.inner = s->crash;
    pthread_mutex_init(&s->gate.lock, NULL);
    pthread_cond_init(&s->gate.cond, NULL);
    CHECK_OK(qcowkit_io_new(&gate_ops, &s->gate, "gate", &s->io));
}

static void stack_close(struct stack *s)
{
    qcowkit_io_close(s->io);
    qcowkit_io_close(s->crash);
    qcowkit_io_close(s->mem);
    pthread_cond_destroy(&s->gate.cond);
    pthread_mutex_destroy(&s->gate.lock);
}

static void gate_arm(struct gate *g, size_t len)
{
    pthread_mutex_lock(&g->lock);
    g->hold_len = len;
    pthread_mutex_unlock(&g->lock);
}

static void gate_wait_held(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->held)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static void gate_release(struct gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->release = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* What a power loss now would leave, opened read-only. */
static struct qcowkit_image *durable_image(struct stack *s,
                                           enum qcowkit_format format,
                                           struct qcowkit_io **io)
{
    CHECK_OK(crash_backend_image(s->crash, CRASH_DROP_ALL, 0, io));
    return test_open_io_ex(*io, "durable", QCOWKIT_OPEN_RDONLY, format, 0);
}

/* ------------------------------------------------- 1. deterministic */

#define CS                65536u
#define QCOW_SECTOR_BYTES 512u
#define HOLD              (3 * CS) /* the held write: three whole clusters */
#define IMGSIZE           (4u << 20)

struct held_write {
    struct qcowkit_image *img;
    const uint8_t *buf;
    uint64_t offset;
    int rc;
};

static void *held_writer(void *arg)
{
    struct held_write *w = arg;

    w->rc = qcowkit_pwrite(w->img, w->buf, HOLD, w->offset);
    return NULL;
}

/* A qcow image (or raw bytes) in memory, its first HOLD bytes written. */
static uint8_t *base_bytes(enum qcowkit_format format, size_t *len)
{
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    struct qcowkit_io *io;
    uint8_t *buf = test_xmalloc(HOLD), *bytes;

    if (format == QCOWKIT_FORMAT_RAW) {
        *len = IMGSIZE;
        bytes = test_xcalloc(IMGSIZE);
        test_pattern(bytes, HOLD, 0, 1);
        free(buf);
        return bytes;
    }
    io = test_mem_io(NULL, 0);
    test_create_opts(&co, IMGSIZE, CS, NULL);
    CHECK_OK(qcowkit_create_io(io, "base", &co));
    img = test_open_io(io, "base", QCOWKIT_OPEN_RDWR);
    test_pattern(buf, HOLD, 0, 1);
    CHECK_OK(qcowkit_pwrite(img, buf, HOLD, 0));
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, len);
    qcowkit_io_close(io);
    free(buf);
    return bytes;
}

/*
 * Hold an in-place write in the middle of its transfer, flush, let the
 * write finish, flush again: the second flush must make the write durable.
 * dirty_tables: a new table is pending too, so the flush writes tables.
 */
static void held_write_case(enum qcowkit_format format, bool dirty_tables)
{
    struct stack s;
    struct held_write w;
    struct qcowkit_image *img, *after;
    struct qcowkit_io *after_io;
    size_t len;
    uint8_t *bytes = base_bytes(format, &len);
    uint8_t *buf = test_xmalloc(HOLD), *rb = test_xmalloc(HOLD);
    pthread_t th;

    printf("held write: %s%s\n", format == QCOWKIT_FORMAT_RAW ? "raw" : "qcow",
           dirty_tables ? ", dirty tables" : "");
    stack_open(&s, bytes, len);
    img = test_open_io_ex(s.io, "held", QCOWKIT_OPEN_RDWR, format, 0);
    test_pattern(buf, HOLD, 0, 2);
    if (dirty_tables)
        CHECK_OK(qcowkit_pwrite(img, "x", 1, IMGSIZE - 1));
    gate_arm(&s.gate, HOLD);
    w = (struct held_write){.img = img, .buf = buf, .offset = 0};
    CHECK(pthread_create(&th, NULL, held_writer, &w) == 0);
    gate_wait_held(&s.gate);
    CHECK_OK(qcowkit_flush(img)); /* runs while the data is in flight */
    gate_release(&s.gate);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_OK(w.rc);
    CHECK_OK(qcowkit_flush(img)); /* must cover the write, now complete */

    after = durable_image(&s, format, &after_io);
    CHECK_OK(qcowkit_pread(after, rb, HOLD, 0));
    CHECK_MEM_EQ(rb, buf, HOLD);
    CHECK_OK(qcowkit_close(after));
    qcowkit_io_close(after_io);
    CHECK_OK(qcowkit_close(img));
    stack_close(&s);
    free(bytes);
    free(buf);
    free(rb);
}

/*
 * Calls that free space (make-empty, a shrinking resize, a repairing
 * check) must wait for transfers still in flight: else a late in-place
 * write lands in a cluster that the space was given to meanwhile.
 */
enum freer { MAKE_EMPTY, SHRINK, REPAIR };

struct freeing {
    struct qcowkit_image *img;
    enum freer what;
    atomic_int done;
    int rc;
};

static void *freeing_call(void *arg)
{
    struct freeing *f = arg;
    struct qcowkit_check_report r = {.struct_size = sizeof r};

    if (f->what == MAKE_EMPTY)
        f->rc = qcowkit_make_empty(f->img);
    else if (f->what == SHRINK)
        f->rc = qcowkit_resize(f->img, QCOW_SECTOR_BYTES);
    else
        f->rc =
            qcowkit_check(f->img, QCOWKIT_CHECK_REPAIR_LEAKS, NULL, NULL, &r);
    atomic_store(&f->done, 1);
    return NULL;
}

static void held_write_vs_freeing(enum freer what)
{
    static const char *const names[] = {"make-empty", "shrink", "repair"};
    struct stack s;
    struct held_write w;
    struct freeing f = {.what = what};
    struct qcowkit_image *img;
    size_t len;
    uint8_t *bytes = base_bytes(QCOWKIT_FORMAT_QCOW, &len);
    uint8_t *buf = test_xmalloc(HOLD), *rb = test_xmalloc(HOLD);
    pthread_t wt, ft;

    printf("held write vs %s\n", names[what]);
    stack_open(&s, bytes, len);
    img = test_open_io_ex(s.io, "held", QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW,
                          0);
    test_pattern(buf, HOLD, 0, 2);
    gate_arm(&s.gate, HOLD);
    w = (struct held_write){.img = img, .buf = buf, .offset = 0};
    CHECK(pthread_create(&wt, NULL, held_writer, &w) == 0);
    gate_wait_held(&s.gate);
    f.img = img;
    CHECK(pthread_create(&ft, NULL, freeing_call, &f) == 0);
    usleep(100 * 1000);
    /* Still waiting for the write: nothing was freed under it. */
    CHECK(atomic_load(&f.done) == 0);
    gate_release(&s.gate);
    CHECK(pthread_join(wt, NULL) == 0);
    CHECK(pthread_join(ft, NULL) == 0);
    CHECK_OK(w.rc);
    CHECK_OK(f.rc);
    if (what == SHRINK)
        CHECK_OK(qcowkit_resize(img, IMGSIZE));
    /* New data, wherever it is placed now, reads back whole. */
    test_pattern(buf, HOLD, 0, 3);
    CHECK_OK(qcowkit_pwrite(img, buf, HOLD, 0));
    CHECK_OK(qcowkit_pread(img, rb, HOLD, 0));
    CHECK_MEM_EQ(rb, buf, HOLD);
    CHECK_OK(qcowkit_close(img));
    stack_close(&s);
    free(bytes);
    free(buf);
    free(rb);
}

/* ------------------------------------------------- 2. randomized */

#define RCS          4096u /* cluster size of the randomized image */
#define RSIZE        (16u << 20)
#define WRITERS      3
#define FLUSHERS     2
#define SLOTS        6            /* clusters per writer */
#define SLOT_STRIDE  (608u << 10) /* slots spread over several L2 tables */
#define MAX_VERSIONS 4096

/* The versions of one slot (one cluster), oldest first. */
struct slot {
    uint64_t offset;
    uint8_t *state[MAX_VERSIONS]; /* contents after each write */
    uint64_t done[MAX_VERSIONS];  /* completion clock (0: in flight) */
    unsigned count;
};

struct race {
    struct stack s;
    struct qcowkit_image *img;
    struct slot slots[WRITERS * SLOTS];
    pthread_mutex_t model; /* guards every slot's history */
    atomic_uint_fast64_t clock;
    atomic_int writers_left;
    uint64_t seed, ops;
    atomic_uint_fast64_t checks;
    uint8_t *zeros;
};

static struct race R;

static void print_seed(void)
{
    fprintf(stderr, "    seed: QCOWKIT_SEED=%" PRIu64 "\n", R.seed);
}

/* The newest version completed at or before clock start (-1: none). */
static int newest_before(const struct slot *sl, uint64_t start)
{
    int k = -1;

    for (unsigned i = 0; i < sl->count; i++)
        if (sl->done[i] && sl->done[i] <= start)
            k = (int)i;
    return k;
}

/* Is got the contents of version k or later (or zeros, if none)? */
static bool acceptable(const struct slot *sl, int k, const uint8_t *got)
{
    if (k < 0 && memcmp(got, R.zeros, RCS) == 0)
        return true;
    for (unsigned i = k < 0 ? 0 : (unsigned)k; i < sl->count; i++)
        if (memcmp(got, sl->state[i], RCS) == 0)
            return true;
    return false;
}

/* Every slot of the durable state against the writes done before start. */
static void check_durable(uint64_t start, const char *who)
{
    struct qcowkit_io *io;
    struct qcowkit_image *after = durable_image(&R.s, QCOWKIT_FORMAT_QCOW, &io);
    uint8_t *got = test_xmalloc(RCS);

    for (unsigned i = 0; i < WRITERS * SLOTS; i++) {
        struct slot *sl = &R.slots[i];
        int k;
        CHECK_OK(qcowkit_pread(after, got, RCS, sl->offset));
        pthread_mutex_lock(&R.model);
        k = newest_before(sl, start);
        if (!acceptable(sl, k, got))
            TEST_FAIL("%s: slot %u (guest offset %" PRIu64 "): after a flush "
                      "that returned 0, the durable state lacks version %d "
                      "(of %u), which completed before the flush began",
                      who, i, sl->offset, k, sl->count);
        pthread_mutex_unlock(&R.model);
    }
    atomic_fetch_add(&R.checks, 1);
    CHECK_OK(qcowkit_close(after));
    qcowkit_io_close(io);
    free(got);
}

static void flush_and_check(const char *who)
{
    uint64_t start = atomic_load(&R.clock);

    CHECK_OK(qcowkit_flush(R.img));
    check_durable(start, who);
}

/* Record the contents a write will leave, before it is issued. */
static unsigned begin_version(struct slot *sl, const uint8_t *state)
{
    unsigned v;

    pthread_mutex_lock(&R.model);
    v = sl->count;
    CHECK(v < MAX_VERSIONS);
    sl->state[v] = test_xmalloc(RCS);
    memcpy(sl->state[v], state, RCS);
    sl->count++;
    pthread_mutex_unlock(&R.model);
    return v;
}

static void end_version(struct slot *sl, unsigned v)
{
    uint64_t t = atomic_fetch_add(&R.clock, 1) + 1;

    pthread_mutex_lock(&R.model);
    sl->done[v] = t;
    pthread_mutex_unlock(&R.model);
}

/* One write to a slot: in place, whole cluster, compressed or zeros. */
static void write_slot(struct slot *sl, struct test_rng *g, uint8_t *state)
{
    uint64_t op = test_rng_below(g, 10);
    uint64_t at = 0, n = RCS;
    unsigned v;
    int rc;

    if (op < 5) { /* part of the cluster: in place once allocated */
        at = test_rng_below(g, RCS);
        n = test_rng_range(g, 1, RCS - at);
        test_rng_fill(g, state + at, n);
    } else if (op < 7) {
        test_rng_fill(g, state, RCS);
    } else if (op < 9) {
        test_compressible(state, RCS, (uint32_t)test_rng_next(g));
    } else {
        at = test_rng_below(g, RCS);
        n = test_rng_range(g, 1, RCS - at);
        memset(state + at, 0, n);
    }
    v = begin_version(sl, state);
    if (op < 7)
        rc = qcowkit_pwrite(R.img, state + at, n, sl->offset + at);
    else if (op < 9)
        rc = qcowkit_pwrite_compressed(R.img, state, RCS, sl->offset);
    else
        rc = qcowkit_pwrite_zeroes(R.img, n, sl->offset + at);
    CHECK_OK(rc);
    end_version(sl, v);
}

struct writer {
    int id;
    pthread_t th;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct slot *mine = &R.slots[w->id * SLOTS];
    uint8_t *state[SLOTS];
    struct test_rng g;

    test_rng_seed(&g, R.seed * 31 + (uint64_t)w->id);
    for (int i = 0; i < SLOTS; i++)
        state[i] = test_xcalloc(RCS);
    for (uint64_t op = 0; op < R.ops; op++) {
        unsigned i = (unsigned)test_rng_below(&g, SLOTS);
        write_slot(&mine[i], &g, state[i]);
        if (test_rng_below(&g, 4) == 0) /* as a FUA write would */
            flush_and_check("writer flush");
        if (test_rng_below(&g, 4) == 0)
            usleep((useconds_t)test_rng_below(&g, 200));
    }
    for (int i = 0; i < SLOTS; i++)
        free(state[i]);
    atomic_fetch_sub(&R.writers_left, 1);
    return NULL;
}

static void *flusher_main(void *arg)
{
    (void)arg;
    while (atomic_load(&R.writers_left) > 0)
        flush_and_check("flusher");
    return NULL;
}

static uint8_t *race_base(size_t *len)
{
    struct qcowkit_create_opts co;
    struct qcowkit_io *io = test_mem_io(NULL, 0);
    uint8_t *bytes;

    test_create_opts(&co, RSIZE, RCS, NULL);
    CHECK_OK(qcowkit_create_io(io, "race", &co));
    bytes = test_mem_bytes(io, len);
    qcowkit_io_close(io);
    return bytes;
}

static void randomized(uint64_t seed, uint64_t ops)
{
    struct writer w[WRITERS];
    pthread_t f[FLUSHERS];
    size_t len;
    uint8_t *bytes = race_base(&len);

    printf("randomized: seed %" PRIu64 ", %" PRIu64 " writes per writer\n",
           seed, ops);
    memset(&R, 0, sizeof R);
    R.seed = seed;
    R.ops = ops;
    R.zeros = test_xcalloc(RCS);
    test_fail_hook = print_seed;
    pthread_mutex_init(&R.model, NULL);
    for (unsigned i = 0; i < WRITERS * SLOTS; i++)
        R.slots[i].offset = (uint64_t)i * SLOT_STRIDE;
    stack_open(&R.s, bytes, len);
    R.s.gate.delay_in = 3;
    test_rng_seed(&R.s.gate.rng, seed ^ 0x9a7e);
    R.img = test_open_io_ex(R.s.io, "race", QCOWKIT_OPEN_RDWR,
                            QCOWKIT_FORMAT_QCOW, 0);
    atomic_store(&R.writers_left, WRITERS);
    for (int i = 0; i < WRITERS; i++) {
        w[i].id = i;
        CHECK(pthread_create(&w[i].th, NULL, writer_main, &w[i]) == 0);
    }
    for (int i = 0; i < FLUSHERS; i++)
        CHECK(pthread_create(&f[i], NULL, flusher_main, NULL) == 0);
    for (int i = 0; i < WRITERS; i++)
        CHECK(pthread_join(w[i].th, NULL) == 0);
    for (int i = 0; i < FLUSHERS; i++)
        CHECK(pthread_join(f[i], NULL) == 0);
    flush_and_check("final flush");
    printf("randomized: %" PRIu64 " flushes checked\n",
           (uint64_t)atomic_load(&R.checks));

    CHECK_OK(qcowkit_close(R.img));
    stack_close(&R.s);
    for (unsigned i = 0; i < WRITERS * SLOTS; i++)
        for (unsigned v = 0; v < R.slots[i].count; v++)
            free(R.slots[i].state[v]);
    pthread_mutex_destroy(&R.model);
    test_fail_hook = NULL;
    free(R.zeros);
    free(bytes);
}

/* Sanitizers make each durable-state copy slow: fewer writes there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_OPS 200
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DEFAULT_OPS 200
#endif
#endif
#ifndef DEFAULT_OPS
#define DEFAULT_OPS 800
#endif

int main(void)
{
    uint64_t seed = test_env_u64("QCOWKIT_SEED", (uint64_t)time(NULL));
    uint64_t ops = test_env_u64("QCOWKIT_ITERATIONS", DEFAULT_OPS);

    const char *part = getenv("QCOWKIT_FLUSH_RACE");

    test_init(240);
    if (!part || strcmp(part, "random") != 0) {
        held_write_case(QCOWKIT_FORMAT_QCOW, false);
        held_write_case(QCOWKIT_FORMAT_QCOW, true);
        held_write_case(QCOWKIT_FORMAT_RAW, false);
        held_write_vs_freeing(MAKE_EMPTY);
        held_write_vs_freeing(SHRINK);
        held_write_vs_freeing(REPAIR);
    }
    if (!part || strcmp(part, "held") != 0)
        randomized(seed, ops);
    printf("flush-race: ok\n");
    return 0;
}
