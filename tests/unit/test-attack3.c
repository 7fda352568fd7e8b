/*
 * test-attack3: the paged L1 table (cache_size 1: four pages, four
 * tables) under threads.  Writers each own clusters spread over every
 * L1 page and read each one back after writing it; meanwhile one thread
 * grows the image again and again (each grow moves the L1 table and
 * forgets every page) and another asks for block status over the whole
 * image.  At the end the image is checked clean and every cluster read
 * again after a reopen.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test.h"

#define CLUSTER 512u
#define SPAN    (UINT64_C(256) << 10) /* guest bytes per L1 entry */
#define SIZE    (UINT64_C(1) << 30)   /* 4096 L1 entries: 8 pages */
#define GROW    (UINT64_C(64) << 20)  /* each grow: 256 entries more */
#define GROWS   24
#define WRITERS 4
#define WRITES  150

struct writer {
    int id;
    uint64_t at[WRITES];
    char err[200];
    pthread_t th;
};

static struct qcowkit_image *img;
static atomic_int running = 1;

static struct qcowkit_image *open_path(const char *path, unsigned flags)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *h = NULL;

    qcowkit_open_opts_init(&oo);
    oo.flags = flags;
    oo.cache_size = 1;
    CHECK_OK(qcowkit_open(path, &oo, &h));
    return h;
}

static void *write_loop(void *arg)
{
    struct writer *w = arg;
    uint8_t buf[CLUSTER], got[CLUSTER];

    for (int k = 0; k < WRITES; k++) {
        /* Entry index k*WRITERS+id, spread by a stride over every page. */
        uint64_t entry = ((uint64_t)(k * WRITERS + w->id) * 37) % (SIZE / SPAN);
        w->at[k] = entry * SPAN + (uint64_t)w->id * CLUSTER;
        test_pattern(buf, CLUSTER, w->at[k], (uint32_t)w->id);
        int err = qcowkit_pwrite(img, buf, CLUSTER, w->at[k]);
        if (err == 0)
            err = qcowkit_pread(img, got, CLUSTER, w->at[k]);
        if (err < 0) {
            snprintf(w->err, sizeof w->err, "writer %d: I/O at %llu: %d", w->id,
                     (unsigned long long)w->at[k], err);
            return NULL;
        }
        if (memcmp(buf, got, CLUSTER)) {
            snprintf(w->err, sizeof w->err,
                     "writer %d: cluster at %llu reads back wrong", w->id,
                     (unsigned long long)w->at[k]);
            return NULL;
        }
    }
    return NULL;
}

static void *grow_loop(void *arg)
{
    int *failed = arg;

    for (int i = 1; i <= GROWS && !*failed; i++)
        if (qcowkit_resize(img, SIZE + (uint64_t)i * GROW) < 0)
            *failed = 1;
    return NULL;
}

static void *status_loop(void *arg)
{
    int *failed = arg;

    while (atomic_load(&running) && !*failed) {
        uint64_t off = 0;
        while (off < SIZE && !*failed) {
            struct qcowkit_chain_extent e;
            qcowkit_chain_extent_init(&e);
            if (qcowkit_block_status_chain(img, off, SIZE - off, &e) < 0 ||
                e.length == 0)
                *failed = 1;
            off += e.length;
        }
    }
    return NULL;
}

static void verify_all(struct qcowkit_image *h, struct writer *w)
{
    uint8_t buf[CLUSTER], got[CLUSTER];

    for (int i = 0; i < WRITERS; i++)
        for (int k = 0; k < WRITES; k++) {
            test_pattern(buf, CLUSTER, w[i].at[k], (uint32_t)w[i].id);
            CHECK_OK(qcowkit_pread(h, got, CLUSTER, w[i].at[k]));
            CHECK_MEM_EQ(buf, got, CLUSTER);
        }
}

int main(void)
{
    char *dir = test_mkdtemp();
    char *path = test_path(dir, "attack3.qcow");
    struct qcowkit_create_opts co;
    static struct writer w[WRITERS];
    struct qcowkit_check_report r;
    pthread_t grower, status;
    int grow_failed = 0, status_failed = 0;

    test_init(240);
    test_create_opts(&co, SIZE, CLUSTER, NULL);
    CHECK_OK(qcowkit_create(path, &co, 0));
    img = open_path(path, QCOWKIT_OPEN_RDWR);
    for (int i = 0; i < WRITERS; i++) {
        w[i].id = i;
        CHECK_EQ(pthread_create(&w[i].th, NULL, write_loop, &w[i]), 0);
    }
    CHECK_EQ(pthread_create(&grower, NULL, grow_loop, &grow_failed), 0);
    CHECK_EQ(pthread_create(&status, NULL, status_loop, &status_failed), 0);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i].th, NULL);
    pthread_join(grower, NULL);
    atomic_store(&running, 0);
    pthread_join(status, NULL);
    for (int i = 0; i < WRITERS; i++)
        if (w[i].err[0])
            TEST_FAIL("%s", w[i].err);
    CHECK(!grow_failed);
    CHECK(!status_failed);
    verify_all(img, w);
    CHECK_OK(qcowkit_close(img));

    img = open_path(path, QCOWKIT_OPEN_RDONLY);
    qcowkit_check_report_init(&r);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ_U64(r.corruptions, 0);
    CHECK_EQ_U64(r.leaks, 0);
    verify_all(img, w);
    CHECK_OK(qcowkit_close(img));
    printf("attack3: ok\n");
    free(path);
    free(dir);
    return 0;
}
