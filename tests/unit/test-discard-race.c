/*
 * test-discard-race: a discard racing an in-place overwrite of the same
 * cluster.  The overwrite moves its data without the table lock, so it may
 * still be in flight when the discard clears the entry; the punch must
 * wait for it (include/qcowkit.h, qcowkit_discard).  Either order is fine,
 * but no other cluster may change and no space may be left holding data
 * that nothing points at.
 *
 *   1. Held: an overwrite is held mid-transfer by a gate backend; a discard
 *      of its cluster must not punch until the overwrite lands, and then
 *      the cluster reads zeros and qcowkit_check finds no leak.
 *   2. Randomized: writer threads overwrite their own clusters again and
 *      again, other threads discard and unmap-zero some of them; the gate
 *      delays transfers at random.  Every cluster reads zeros or one whole
 *      version its writer wrote, clusters never discarded read their last
 *      version, and check finds no corruption and no leak.  In some runs
 *      the whole image is discarded now and then, so its L2 table is
 *      freed while overwrites are in flight.
 *
 * Environment: QCOWKIT_SEED=n, QCOWKIT_ITERATIONS=n (writes per writer).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test.h"

#define CS       4096u
#define CLUSTERS 64u

/* ------------------------------------------------------------ the gate */

struct gate {
    struct qcowkit_io *inner;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t hold_at; /* hold the next pwrite at this offset (0: none) */
    bool held, release;
    unsigned delay_in; /* delay one transfer in this many (0: never) */
    struct test_rng rng;
    atomic_uint discards;
};

static useconds_t gate_delay(struct gate *g)
{
    if (g->delay_in == 0 || test_rng_below(&g->rng, g->delay_in) != 0)
        return 0;
    return (useconds_t)test_rng_range(&g->rng, 1, 200);
}

static int gate_pwrite(void *opaque, const void *buf, size_t count,
                       uint64_t offset)
{
    struct gate *g = opaque;
    useconds_t delay;

    pthread_mutex_lock(&g->lock);
    if (g->hold_at && offset == g->hold_at) {
        g->hold_at = 0;
        g->held = true;
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

static int gate_discard(void *opaque, uint64_t offset, uint64_t length)
{
    struct gate *g = opaque;

    atomic_fetch_add(&g->discards, 1);
    return qcowkit_io_discard(g->inner, offset, length);
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
    .discard = gate_discard,
};

struct stack {
    struct qcowkit_io *mem, *io;
    struct gate gate;
    struct qcowkit_image *img;
};

/* A fresh image on memory behind a gate, every cluster written once. */
static void stack_open(struct stack *s, uint64_t seed)
{
    struct qcowkit_io *made;
    struct qcowkit_image *img =
        test_mem_image((uint64_t)CLUSTERS * CS, CS, NULL, "race.qcow", &made);
    uint8_t *buf = test_xcalloc((size_t)CLUSTERS * CS);

    CHECK_OK(qcowkit_pwrite(img, buf, (size_t)CLUSTERS * CS, 0));
    CHECK_OK(qcowkit_close(img));
    memset(s, 0, sizeof *s);
    s->mem = made;
    s->gate.inner = s->mem;
    pthread_mutex_init(&s->gate.lock, NULL);
    pthread_cond_init(&s->gate.cond, NULL);
    test_rng_seed(&s->gate.rng, seed);
    CHECK_OK(qcowkit_io_new(&gate_ops, &s->gate, "gate", &s->io));
    s->img = test_open_io(s->io, "race.qcow", QCOWKIT_OPEN_RDWR);
    free(buf);
}

static void stack_close(struct stack *s)
{
    CHECK_OK(qcowkit_close(s->img));
    qcowkit_io_close(s->io);
    qcowkit_io_close(s->mem);
    pthread_cond_destroy(&s->gate.cond);
    pthread_mutex_destroy(&s->gate.lock);
}

static void check_clean(struct qcowkit_image *img)
{
    struct qcowkit_check_report rep;

    qcowkit_check_report_init(&rep);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &rep));
    CHECK_EQ_U64(rep.corruptions, 0);
    CHECK_EQ_U64(rep.leaks, 0);
}

/* The version v of cluster c: every 8 bytes say (c, v). */
static void version_fill(uint8_t *buf, uint32_t c, uint32_t v)
{
    for (size_t i = 0; i < CS; i += 8) {
        uint32_t w[2] = {c + 1, v};
        memcpy(buf + i, w, 8);
    }
}

/* Zeros (0 returned) or one whole version of cluster c (v + 1). */
static uint32_t version_of(const uint8_t *buf, uint32_t c)
{
    uint32_t w[2];

    if (test_is_zero(buf, CS))
        return 0;
    memcpy(w, buf, 8);
    if (w[0] != c + 1)
        TEST_FAIL("cluster %u holds data of cluster %u", c, w[0] - 1);
    for (size_t i = 8; i < CS; i += 8)
        if (memcmp(buf + i, w, 8) != 0)
            TEST_FAIL("cluster %u holds a torn or foreign version", c);
    return w[1] + 1;
}

/* ------------------------------------------------------------- 1. held */

struct call {
    struct stack *s;
    uint64_t offset;
    uint8_t *buf;
    int rc;
};

static void *do_write(void *arg)
{
    struct call *c = arg;
    c->rc = qcowkit_pwrite(c->s->img, c->buf, CS, c->offset);
    return NULL;
}

static void *do_discard(void *arg)
{
    struct call *c = arg;
    c->rc = qcowkit_discard(c->s->img, c->offset, CS);
    return NULL;
}

static void test_held(void)
{
    struct stack s;
    struct qcowkit_extent e;
    uint8_t *buf = test_xmalloc(CS), *got = test_xmalloc(CS);
    struct call w, d;
    pthread_t tw, td;
    uint64_t host;

    stack_open(&s, 1);
    CHECK_OK(qcowkit_block_status(s.img, 5 * CS, CS, &e));
    CHECK(e.flags & QCOWKIT_EXTENT_ALLOCATED);
    host = e.host_offset;
    version_fill(buf, 5, 7);
    w = (struct call){&s, 5 * CS, buf, 0};
    d = (struct call){&s, 5 * CS, NULL, 0};

    pthread_mutex_lock(&s.gate.lock);
    s.gate.hold_at = host;
    pthread_mutex_unlock(&s.gate.lock);
    CHECK(pthread_create(&tw, NULL, do_write, &w) == 0);
    pthread_mutex_lock(&s.gate.lock);
    while (!s.gate.held)
        pthread_cond_wait(&s.gate.cond, &s.gate.lock);
    pthread_mutex_unlock(&s.gate.lock);

    /* The overwrite is in flight: the discard clears the entry, syncs,
     * and must then wait for it before punching. */
    CHECK(pthread_create(&td, NULL, do_discard, &d) == 0);
    usleep(100 * 1000);
    CHECK_EQ(atomic_load(&s.gate.discards), 0);

    pthread_mutex_lock(&s.gate.lock);
    s.gate.release = true;
    pthread_cond_broadcast(&s.gate.cond);
    pthread_mutex_unlock(&s.gate.lock);
    CHECK(pthread_join(tw, NULL) == 0);
    CHECK(pthread_join(td, NULL) == 0);
    CHECK_OK(w.rc);
    CHECK_OK(d.rc);
    CHECK_EQ(atomic_load(&s.gate.discards), 1);

    /* The discard came last: zeros, and the space holds nothing. */
    CHECK_OK(qcowkit_pread(s.img, got, CS, 5 * CS));
    CHECK_ZERO(got, CS);
    CHECK_OK(qcowkit_io_pread(s.mem, got, CS, host));
    CHECK_ZERO(got, CS);
    check_clean(s.img);
    stack_close(&s);
    free(buf);
    free(got);
}

/* ------------------------------------------------------- 2. randomized */

#define WRITERS 3
#define CUTTERS 2

struct shared {
    struct stack *s;
    uint64_t seed;
    unsigned iterations;
    /* Per cluster: the last version its writer completed (+1), and
     * whether anything ever discarded it. */
    atomic_uint done[CLUSTERS];
    atomic_bool touched[CLUSTERS];
    atomic_bool stop;
    bool whole; /* cutters also discard everything: the table goes */
};

struct worker {
    struct shared *sh;
    unsigned id;
};

/* Writer w owns the clusters c with c % WRITERS == w. */
static void *writer(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    uint8_t *buf = test_xmalloc(CS);
    struct test_rng r;

    test_rng_seed(&r, sh->seed * 31 + wk->id);
    for (unsigned i = 1; i <= sh->iterations; i++) {
        uint32_t c =
            (uint32_t)(test_rng_below(&r, CLUSTERS / WRITERS) * WRITERS +
                       wk->id);
        version_fill(buf, c, i);
        CHECK_OK(qcowkit_pwrite(sh->s->img, buf, CS, (uint64_t)c * CS));
        atomic_store(&sh->done[c], i + 1);
    }
    free(buf);
    return NULL;
}

/* Cutters discard or unmap-zero the even clusters only. */
static void *cutter(void *arg)
{
    struct worker *wk = arg;
    struct shared *sh = wk->sh;
    struct test_rng r;

    test_rng_seed(&r, sh->seed * 77 + wk->id);
    while (!atomic_load(&sh->stop)) {
        uint32_t c = (uint32_t)test_rng_below(&r, CLUSTERS / 2) * 2;
        uint32_t n = test_rng_below(&r, 4) == 0 ? 2 : 1;
        if (sh->whole && test_rng_below(&r, 8) == 0) {
            c = 0;
            n = CLUSTERS;
        }
        if (c + n > CLUSTERS)
            n = 1;
        for (uint32_t k = 0; k < n; k++)
            atomic_store(&sh->touched[c + k], true);
        if (test_rng_below(&r, 2))
            CHECK_OK(qcowkit_discard(sh->s->img, (uint64_t)c * CS,
                                     (uint64_t)n * CS));
        else
            CHECK_OK(qcowkit_pwrite_zeroes_flags(sh->s->img, (size_t)n * CS,
                                                 (uint64_t)c * CS,
                                                 QCOWKIT_ZEROES_MAY_UNMAP));
        if (test_rng_below(&r, 8) == 0)
            CHECK_OK(qcowkit_flush(sh->s->img));
    }
    return NULL;
}

static void test_random(uint64_t seed, unsigned iterations, bool whole)
{
    struct stack s;
    struct shared sh;
    struct worker wk[WRITERS + CUTTERS];
    pthread_t t[WRITERS + CUTTERS];
    uint8_t *got = test_xmalloc(CS);

    stack_open(&s, seed);
    s.gate.delay_in = 4;
    memset(&sh, 0, sizeof sh);
    sh.s = &s;
    sh.seed = seed;
    sh.iterations = iterations;
    sh.whole = whole;
    for (unsigned i = 0; i < WRITERS + CUTTERS; i++) {
        wk[i] = (struct worker){&sh, i < WRITERS ? i : i - WRITERS};
        CHECK(pthread_create(&t[i], NULL, i < WRITERS ? writer : cutter,
                             &wk[i]) == 0);
    }
    for (unsigned i = 0; i < WRITERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    atomic_store(&sh.stop, true);
    for (unsigned i = WRITERS; i < WRITERS + CUTTERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);

    for (uint32_t c = 0; c < CLUSTERS; c++) {
        uint32_t v;
        CHECK_OK(qcowkit_pread(s.img, got, CS, (uint64_t)c * CS));
        v = version_of(got, c);
        /* Never cut: exactly the last version written (or the zeros it
         * was created with). */
        if (!atomic_load(&sh.touched[c]))
            CHECK_EQ(v, atomic_load(&sh.done[c]));
    }
    check_clean(s.img);
    CHECK_OK(qcowkit_close(s.img));
    s.img = test_open_io(s.io, "race.qcow", QCOWKIT_OPEN_RDWR);
    check_clean(s.img);
    stack_close(&s);
    free(got);
}

int main(void)
{
    uint64_t seed = test_env_u64("QCOWKIT_SEED", 12);
    unsigned iterations = (unsigned)test_env_u64("QCOWKIT_ITERATIONS", 300);

    test_init(240);
    test_held();
    for (uint64_t i = 0; i < 4; i++)
        test_random(seed + i, iterations, i % 2);
    return 0;
}
