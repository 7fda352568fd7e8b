/*
 * test-reshape: calls that reshape an image (resize, make-empty, check
 * with repairs, set-backing) run on one handle while other threads read,
 * write, flush and ask for block status on it, with no lock of the
 * test's own.  Each writer owns some clusters inside the part of the
 * image that never shrinks, and checks after every write that what it
 * wrote reads back; zeros only when a make-empty may have run since the
 * write began.  A tail writer writes where the image grows and shrinks,
 * so that shrinks free space that new clusters then reuse: a late write
 * into freed space would show as another writer's data changing.  At the
 * end the image is checked (no corruption) and every cluster read again.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test.h"

#define CS        4096u
#define BASE      (UINT64_C(4) << 20) /* never shrinks below this */
#define WRITERS   3
#define SLOTS     8
#define STRIDE    (UINT64_C(160) << 10) /* slots spread over tables */
#define ITERATION 100                   /* reshapes, QCOWKIT_RESHAPES */

struct slot {
    uint64_t offset;
    uint8_t expect[CS]; /* what the last write left */
    /* Make-empties finished before the last write began. */
    unsigned long empties_before;
};

struct writer {
    int id;
    struct slot slots[SLOTS];
    char err[256];
    pthread_t th;
};

static struct qcowkit_image *img;
static atomic_int reshaping = 1;
/* Make-empties begun and finished, to judge a cluster that reads zeros. */
static atomic_ulong empties_begun, empties_done;
static atomic_ulong checked_writes;

#define WFAIL(w, ...)                                                          \
    do {                                                                       \
        snprintf((w)->err, sizeof((w)->err), __VA_ARGS__);                     \
        return NULL;                                                           \
    } while (0)

/* Did the slot read back as it must?  Zeros only after a make-empty. */
static bool read_back_ok(const struct slot *s, const uint8_t *got)
{
    if (memcmp(got, s->expect, CS) == 0)
        return true;
    return test_is_zero(got, CS) &&
           atomic_load(&empties_begun) > s->empties_before;
}

/* One write of the slot: plain, compressed or zeros. */
static int write_slot(struct slot *s, struct test_rng *rng, uint32_t tag)
{
    uint64_t op = test_rng_below(rng, 100);

    s->empties_before = atomic_load(&empties_done);
    if (op < 15) {
        memset(s->expect, 0, CS);
        return qcowkit_pwrite_zeroes(img, CS, s->offset);
    }
    if (op < 30) {
        test_compressible(s->expect, CS, tag);
        return qcowkit_pwrite_compressed(img, s->expect, CS, s->offset);
    }
    test_pattern(s->expect, CS, s->offset, tag);
    return qcowkit_pwrite(img, s->expect, CS, s->offset);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    uint8_t got[CS];
    struct test_rng rng;
    uint32_t tag = 1;
    int rc;

    test_rng_seed(&rng, 4242 + (uint64_t)w->id);
    while (atomic_load(&reshaping) || tag < 64) {
        struct slot *s = &w->slots[test_rng_below(&rng, SLOTS)];
        rc = write_slot(s, &rng, (uint32_t)w->id << 20 | tag++);
        if (rc < 0)
            WFAIL(w, "writer %d: write at %llu: %d %s", w->id,
                  (unsigned long long)s->offset, rc, qcowkit_errmsg());
        rc = qcowkit_pread(img, got, CS, s->offset);
        if (rc < 0)
            WFAIL(w, "writer %d: read at %llu: %d %s", w->id,
                  (unsigned long long)s->offset, rc, qcowkit_errmsg());
        if (!read_back_ok(s, got))
            WFAIL(w, "writer %d: cluster at %llu does not read back", w->id,
                  (unsigned long long)s->offset);
        atomic_fetch_add(&checked_writes, 1);
    }
    return NULL;
}

/* Writes where the image grows and shrinks; past the end is refused. */
static void *tail_main(void *arg)
{
    struct writer *w = arg;
    uint8_t buf[CS];
    struct test_rng rng;

    test_rng_seed(&rng, 777);
    while (atomic_load(&reshaping)) {
        uint64_t at = BASE + test_rng_below(&rng, BASE / CS) * CS;
        int rc;
        test_pattern(buf, CS, at, 99);
        rc = qcowkit_pwrite(img, buf, CS, at);
        if (rc < 0 && rc != -EINVAL)
            WFAIL(w, "tail: write at %llu: %d %s", (unsigned long long)at, rc,
                  qcowkit_errmsg());
        usleep(200);
    }
    return NULL;
}

/* Flushes, information and block status: they must never fail. */
static void *observer_main(void *arg)
{
    struct writer *w = arg;
    struct test_rng rng;

    test_rng_seed(&rng, 99);
    while (atomic_load(&reshaping)) {
        struct qcowkit_chain_extent x;
        struct qcowkit_info info;
        uint64_t at = test_rng_below(&rng, BASE / CS) * CS;
        int rc;
        qcowkit_chain_extent_init(&x);
        qcowkit_info_init(&info);
        rc = qcowkit_block_status_chain(img, at, BASE - at, &x);
        if (rc < 0)
            WFAIL(w, "block status at %llu: %d %s", (unsigned long long)at, rc,
                  qcowkit_errmsg());
        rc = qcowkit_get_info(img, &info);
        if (rc < 0 ||
            (info.virtual_size != BASE && info.virtual_size != 2 * BASE))
            WFAIL(w, "info: %d, virtual size %llu", rc,
                  (unsigned long long)info.virtual_size);
        if ((rc = qcowkit_flush(img)) < 0)
            WFAIL(w, "flush: %d %s", rc, qcowkit_errmsg());
    }
    return NULL;
}

static void reshape_once(unsigned i)
{
    struct qcowkit_check_report r;

    CHECK_OK(qcowkit_resize(img, 2 * BASE));
    usleep(1000);
    CHECK_OK(qcowkit_resize(img, BASE));
    qcowkit_check_report_init(&r);
    CHECK_OK(qcowkit_check(img, QCOWKIT_CHECK_REPAIR_LEAKS, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    CHECK_OK(qcowkit_set_backing(img, "nowhere.qcow"));
    CHECK_OK(qcowkit_set_backing(img, NULL));
    if (i % 5 == 4) {
        atomic_fetch_add(&empties_begun, 1);
        CHECK_OK(qcowkit_make_empty(img));
        atomic_fetch_add(&empties_done, 1);
    }
}

static void check_final(const char *path, struct writer *w)
{
    struct qcowkit_check_report r;
    uint8_t got[CS];

    img = test_open_file(path, QCOWKIT_OPEN_RDWR);
    qcowkit_check_report_init(&r);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    CHECK_EQ_U64(test_info(img).virtual_size, BASE);
    for (int i = 0; i < WRITERS; i++)
        for (int j = 0; j < SLOTS; j++) {
            CHECK_OK(qcowkit_pread(img, got, CS, w[i].slots[j].offset));
            CHECK(read_back_ok(&w[i].slots[j], got));
        }
    CHECK_OK(qcowkit_close(img));
}

int main(void)
{
    struct writer w[WRITERS + 2];
    char *dir, *path;
    unsigned reshapes = (unsigned)test_env_u64("QCOWKIT_RESHAPES", ITERATION);

    test_init(280);
    memset(w, 0, sizeof w);
    /* A file: its holes let each check skip the space given back. */
    dir = test_mkdtemp();
    path = test_path(dir, "reshape.qcow");
    test_create_file(path, BASE, CS, NULL);
    /* No syncs: durability is not what this test is about. */
    img = test_open_file(path, QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_SYNC);
    for (int i = 0; i < WRITERS; i++) {
        w[i].id = i;
        for (int j = 0; j < SLOTS; j++)
            w[i].slots[j].offset = ((uint64_t)j * WRITERS + i) * STRIDE;
        CHECK(pthread_create(&w[i].th, NULL, writer_main, &w[i]) == 0);
    }
    CHECK(pthread_create(&w[WRITERS].th, NULL, tail_main, &w[WRITERS]) == 0);
    CHECK(pthread_create(&w[WRITERS + 1].th, NULL, observer_main,
                         &w[WRITERS + 1]) == 0);
    for (unsigned i = 0; i < reshapes; i++)
        reshape_once(i);
    atomic_store(&reshaping, 0);
    for (int i = 0; i < WRITERS + 2; i++) {
        CHECK(pthread_join(w[i].th, NULL) == 0);
        if (w[i].err[0])
            TEST_FAIL("%s", w[i].err);
    }
    CHECK_OK(qcowkit_close(img));
    check_final(path, w);
    free(path);
    free(dir);
    printf("%u reshapes amid %lu writes read back: data intact\n", reshapes,
           atomic_load(&checked_writes));
    return 0;
}
