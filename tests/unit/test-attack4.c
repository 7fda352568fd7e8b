/*
 * test-attack4: hostile review of discard and zeros that may unmap
 * (issue 12).  Each case is a reproducer of a bug found in review.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test.h"

static char *g_dir;

static char *path_of(const char *name)
{
    return test_concat3(g_dir, "/", name);
}

static uint8_t *filled(size_t n, uint8_t byte)
{
    uint8_t *p = test_xmalloc(n);

    memset(p, byte, n);
    return p;
}

/* No corruption; no leak either where leaks_too. */
static void check_image(struct qcowkit_image *img, bool leaks_too)
{
    struct qcowkit_check_report rep;

    qcowkit_check_report_init(&rep);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &rep));
    CHECK_EQ_U64(rep.corruptions, 0);
    if (leaks_too)
        CHECK_EQ_U64(rep.leaks, 0);
}

/*
 * An encrypted overlay whose size ends inside a cluster: zeros that may
 * unmap up to the end are written as real zeros, and the request reaches
 * the virtual size only, not the end of the last cluster.
 */
static void test_encrypted_tail(void)
{
    static const uint8_t key[16] = "attack4-key";
    const uint32_t cs = 4096;
    const uint64_t size = 3 * cs + 512;
    char *base = path_of("enc-base.qcow"), *top = path_of("enc-top.qcow");
    uint8_t *under = filled(size, 0xb5), *got = test_xmalloc(size);
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;

    test_create_opts(&co, size, cs, NULL);
    CHECK_OK(qcowkit_create(base, &co, 0));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.format = QCOWKIT_FORMAT_QCOW;
    CHECK_OK(qcowkit_open(base, &oo, &img));
    CHECK_OK(qcowkit_pwrite(img, under, size, 0));
    CHECK_OK(qcowkit_close(img));
    test_create_opts(&co, size, cs, "enc-base.qcow");
    co.key = key;
    co.key_len = sizeof key;
    CHECK_OK(qcowkit_create(top, &co, 0));
    oo.key = key;
    oo.key_len = sizeof key;
    CHECK_OK(qcowkit_open(top, &oo, &img));
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, (size_t)size, 0,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    CHECK_OK(qcowkit_pread(img, got, size, 0));
    CHECK_ZERO(got, size);
    check_image(img, true);
    CHECK_OK(qcowkit_close(img));
    free(under);
    free(got);
    free(base);
    free(top);
}

/* ------------------------------------------------------------- stress */

#define CS       4096u
#define CLUSTERS 2048u /* four tables of 512 entries */
#define WRITERS  3u

/* Every 8-byte word of cluster c's version v is c << 32 | v: a read that
 * lands on another cluster's bytes, or on garbage, shows. */
static void version_fill(uint8_t *buf, uint32_t c, uint32_t v)
{
    uint64_t w = (uint64_t)c << 32 | v;

    for (size_t i = 0; i < CS; i += 8)
        memcpy(buf + i, &w, 8);
}

static void check_words(const uint8_t *buf, uint32_t c)
{
    for (size_t i = 0; i < CS; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        if (w != 0 && (w >> 32) != c)
            CHECK(!"a cluster read holds another cluster's bytes");
    }
}

struct stress {
    struct qcowkit_image *img;
    unsigned iterations;
    bool mixed; /* compressed writes and unmapped zeros too */
    atomic_bool stop;
    atomic_uint done[CLUSTERS];
    atomic_bool touched[CLUSTERS];
};

struct role {
    struct stress *st;
    unsigned id;
};

/* Writer w owns the clusters c % WRITERS == w: plain or compressed. */
static void *stress_writer(void *arg)
{
    struct role *ro = arg;
    uint8_t *buf = test_xmalloc(CS);
    struct test_rng r;

    test_rng_seed(&r, 1000 + ro->id);
    for (unsigned i = 1; i <= ro->st->iterations; i++) {
        uint32_t c =
            (uint32_t)(test_rng_below(&r, CLUSTERS / WRITERS) * WRITERS +
                       ro->id);
        version_fill(buf, c, i);
        if (ro->st->mixed && test_rng_below(&r, 2))
            CHECK_OK(qcowkit_pwrite_compressed(ro->st->img, buf, CS,
                                               (uint64_t)c * CS));
        else
            CHECK_OK(qcowkit_pwrite(ro->st->img, buf, CS, (uint64_t)c * CS));
        atomic_store(&ro->st->done[c], i);
    }
    free(buf);
    return NULL;
}

/* Readers read runs of clusters: never an error, never foreign bytes. */
static void *stress_reader(void *arg)
{
    struct role *ro = arg;
    const uint32_t most = 64;
    uint8_t *buf = test_xmalloc((size_t)most * CS);
    struct test_rng r;

    test_rng_seed(&r, 2000 + ro->id);
    while (!atomic_load(&ro->st->stop)) {
        uint32_t c = (uint32_t)test_rng_below(&r, CLUSTERS);
        uint32_t n = 1 + (uint32_t)test_rng_below(&r, most);
        if (c + n > CLUSTERS)
            n = CLUSTERS - c;
        CHECK_OK(
            qcowkit_pread(ro->st->img, buf, (size_t)n * CS, (uint64_t)c * CS));
        for (uint32_t k = 0; k < n; k++)
            check_words(buf + (size_t)k * CS, c + k);
    }
    free(buf);
    return NULL;
}

/* Cutters discard or unmap-zero the clusters of one third of the owners. */
static void *stress_cutter(void *arg)
{
    struct role *ro = arg;
    struct test_rng r;

    test_rng_seed(&r, 3000 + ro->id);
    while (!atomic_load(&ro->st->stop)) {
        uint32_t c = (uint32_t)test_rng_below(&r, CLUSTERS / WRITERS) * WRITERS;
        uint32_t n = 1 + (uint32_t)test_rng_below(&r, 600);
        if (c + n > CLUSTERS)
            n = CLUSTERS - c;
        for (uint32_t k = 0; k < n; k++)
            atomic_store(&ro->st->touched[c + k], true);
        if (!ro->st->mixed || test_rng_below(&r, 2))
            CHECK_OK(qcowkit_discard(ro->st->img, (uint64_t)c * CS,
                                     (uint64_t)n * CS));
        else
            CHECK_OK(qcowkit_pwrite_zeroes_flags(ro->st->img, (size_t)n * CS,
                                                 (uint64_t)c * CS,
                                                 QCOWKIT_ZEROES_MAY_UNMAP));
    }
    return NULL;
}

/* Grows the image past the owned clusters and cuts it back; checks. */
static void *stress_reshaper(void *arg)
{
    struct role *ro = arg;
    struct qcowkit_check_report rep;
    struct test_rng r;

    test_rng_seed(&r, 4000 + ro->id);
    while (!atomic_load(&ro->st->stop)) {
        uint64_t extra = test_rng_below(&r, 3 * 512) * CS + 512;
        CHECK_OK(qcowkit_resize(ro->st->img, (uint64_t)CLUSTERS * CS + extra));
        CHECK_OK(qcowkit_pwrite_zeroes_flags(
            ro->st->img, (size_t)extra, (uint64_t)CLUSTERS * CS,
            ro->st->mixed ? QCOWKIT_ZEROES_MAY_UNMAP : 0));
        CHECK_OK(qcowkit_resize(ro->st->img, (uint64_t)CLUSTERS * CS));
        qcowkit_check_report_init(&rep);
        CHECK_OK(qcowkit_check(
            ro->st->img, test_rng_below(&r, 2) ? QCOWKIT_CHECK_REPAIR_LEAKS : 0,
            NULL, NULL, &rep));
        CHECK_EQ_U64(rep.corruptions, 0);
        CHECK_OK(qcowkit_flush(ro->st->img));
    }
    return NULL;
}

static void stress_verify(struct stress *st)
{
    uint8_t *got = test_xmalloc(CS), *want = test_xmalloc(CS);

    for (uint32_t c = 0; c < CLUSTERS; c++) {
        CHECK_OK(qcowkit_pread(st->img, got, CS, (uint64_t)c * CS));
        check_words(got, c);
        if (atomic_load(&st->touched[c]))
            continue;
        version_fill(want, c, atomic_load(&st->done[c]));
        CHECK_MEM_EQ(got, want, CS);
    }
    free(got);
    free(want);
}

/*
 * Plain and compressed writes, runs of reads, discards, unmapped zeros
 * over a backing file, resizes and checks, all at once on a real file:
 * no request fails, no read shows foreign bytes, the clusters no cutter
 * touched keep their last version, and check finds no corruption.  Not
 * mixed (plain writes and discards), no leak either: an overwritten
 * compressed cluster's stream is leaked by design, as QEMU's is.
 */
static void test_stress(bool mixed)
{
    char *base = path_of(mixed ? "mixed-base.qcow" : "plain-base.qcow");
    char *top = path_of(mixed ? "mixed.qcow" : "plain.qcow");
    uint8_t *buf = test_xmalloc((size_t)CLUSTERS * CS);
    static struct stress st;
    struct role ro[WRITERS + 4];
    pthread_t t[WRITERS + 4];
    void *(*fn[WRITERS + 4])(void *);
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;

    for (uint32_t c = 0; c < CLUSTERS; c++)
        version_fill(buf + (size_t)c * CS, c, 0);
    test_create_opts(&co, (uint64_t)CLUSTERS * CS, CS, NULL);
    CHECK_OK(qcowkit_create(base, &co, 0));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.format = QCOWKIT_FORMAT_QCOW;
    CHECK_OK(qcowkit_open(base, &oo, &st.img));
    CHECK_OK(qcowkit_pwrite(st.img, buf, (size_t)CLUSTERS * CS, 0));
    CHECK_OK(qcowkit_close(st.img));
    test_create_opts(&co, (uint64_t)CLUSTERS * CS, CS,
                     mixed ? "mixed-base.qcow" : "plain-base.qcow");
    CHECK_OK(qcowkit_create(top, &co, 0));
    CHECK_OK(qcowkit_open(top, &oo, &st.img));
    memset(st.done, 0, sizeof st.done);
    memset(st.touched, 0, sizeof st.touched);
    atomic_store(&st.stop, false);
    st.mixed = mixed;
    st.iterations = (unsigned)test_env_u64("QCOWKIT_ITERATIONS", 1500);
    for (unsigned i = 0; i < WRITERS + 4; i++) {
        ro[i] = (struct role){&st, i};
        fn[i] = i < WRITERS       ? stress_writer
                : i < WRITERS + 2 ? stress_reader
                : i < WRITERS + 3 ? stress_cutter
                                  : stress_reshaper;
        CHECK(pthread_create(&t[i], NULL, fn[i], &ro[i]) == 0);
    }
    for (unsigned i = 0; i < WRITERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    atomic_store(&st.stop, true);
    for (unsigned i = WRITERS; i < WRITERS + 4; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    stress_verify(&st);
    check_image(st.img, !mixed);
    CHECK_OK(qcowkit_close(st.img));
    CHECK_OK(qcowkit_open(top, &oo, &st.img));
    stress_verify(&st);
    check_image(st.img, !mixed);
    CHECK_OK(qcowkit_close(st.img));
    free(buf);
    free(base);
    free(top);
}

int main(void)
{
    test_init(110);
    g_dir = test_mkdtemp();
    test_encrypted_tail();
    test_stress(false);
    test_stress(true);
    free(g_dir);
    return 0;
}
