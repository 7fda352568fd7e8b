/*
 * test-l1-paging: the L1 table is read through a small page cache, so
 * every path that reads or writes an entry must agree with the disk even
 * while pages and tables are evicted all the time (cache_size 1: four
 * pages and four tables).
 *   1. writes scattered over 64 pages of L1 entries read back after a
 *      reopen, block status finds each one and check finds the image
 *      clean;
 *   2. growing the image moves the L1 table; the data stays, new writes
 *      land in the grown range, make-empty leaves zeros;
 *   3. the kept-table rule works over pages: three L1 entries far apart
 *      name the same or overlapping tables; the lowest offset, then the
 *      lowest index, wins and the others are refused by reads and check;
 *   4. a header declaring a 1 GiB L1 table over a hole opens, reads and
 *      describes 1 GiB at once (the table is never read whole).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define CLUSTER 512u
#define SPAN    (UINT64_C(256) << 10) /* guest bytes per L1 entry */
#define SIZE    (UINT64_C(8) << 30)   /* 32768 L1 entries: 64 pages */
#define WRITES  200
/* The crafted images: 512-byte clusters, 64 entries per table. */
#define CSPAN (UINT64_C(32) << 10)
#define CSIZE (UINT64_C(1) << 30)

static struct qcowkit_image *open_path(const char *path, unsigned flags)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img = NULL;

    qcowkit_open_opts_init(&oo);
    oo.flags = flags;
    oo.cache_size = 1;
    CHECK_OK(qcowkit_open(path, &oo, &img));
    return img;
}

static void fill(uint8_t *buf, uint64_t guest)
{
    for (unsigned i = 0; i < CLUSTER; i++)
        buf[i] = (uint8_t)(guest / CLUSTER * 31 + i);
}

static void check_clean(struct qcowkit_image *img, bool leaks_too)
{
    struct qcowkit_check_report r = {.struct_size = sizeof r};

    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    if (leaks_too)
        CHECK_EQ(r.leaks, 0);
}

static void verify(struct qcowkit_image *img, const uint64_t *at, int n)
{
    uint8_t want[CLUSTER], got[CLUSTER];

    for (int k = n - 1; k >= 0; k--) {
        fill(want, at[k]);
        CHECK_OK(qcowkit_pread(img, got, CLUSTER, at[k]));
        CHECK_MEM_EQ(got, want, CLUSTER);
    }
}

/* Allocated bytes as block status tells them, over the whole image. */
static uint64_t allocated(struct qcowkit_image *img, uint64_t size)
{
    uint64_t at = 0, total = 0;

    while (at < size) {
        struct qcowkit_extent e;
        CHECK_OK(qcowkit_block_status(img, at, size - at, &e));
        CHECK(e.length > 0);
        if (e.flags & QCOWKIT_EXTENT_ALLOCATED)
            total += e.length;
        at += e.length;
    }
    return total;
}

static void part_scattered(const char *path)
{
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    uint64_t at[WRITES + 1];
    uint8_t buf[CLUSTER];
    struct test_rng rng;

    test_rng_seed(&rng, 9);
    test_create_opts(&co, SIZE, CLUSTER, NULL);
    CHECK_OK(qcowkit_create(path, &co, 0));
    img = open_path(path, QCOWKIT_OPEN_RDWR);
    /* One cluster per L1 entry, entries spread over every page. */
    for (int k = 0; k < WRITES; k++) {
        at[k] = (test_rng_below(&rng, SIZE / SPAN / WRITES) +
                 (uint64_t)k * (SIZE / SPAN / WRITES)) *
                    SPAN +
                test_rng_below(&rng, SPAN / CLUSTER) * CLUSTER;
        fill(buf, at[k]);
        CHECK_OK(qcowkit_pwrite(img, buf, CLUSTER, at[k]));
    }
    /* The same handle: tables evicted, entries read from cached pages. */
    verify(img, at, WRITES);
    CHECK_EQ_U64(allocated(img, SIZE), (uint64_t)WRITES * CLUSTER);
    CHECK_OK(qcowkit_close(img));

    img = open_path(path, QCOWKIT_OPEN_RDONLY);
    verify(img, at, WRITES);
    CHECK_EQ_U64(allocated(img, SIZE), (uint64_t)WRITES * CLUSTER);
    check_clean(img, true);
    qcowkit_close(img);

    /* Grow: the L1 table moves to the end of the file. */
    img = open_path(path, QCOWKIT_OPEN_RDWR);
    CHECK_OK(qcowkit_resize(img, 4 * SIZE));
    at[WRITES] = 3 * SIZE + 12345 * CLUSTER;
    fill(buf, at[WRITES]);
    CHECK_OK(qcowkit_pwrite(img, buf, CLUSTER, at[WRITES]));
    verify(img, at, WRITES + 1);
    CHECK_OK(qcowkit_close(img));
    img = open_path(path, QCOWKIT_OPEN_RDWR);
    verify(img, at, WRITES + 1);
    CHECK_EQ_U64(allocated(img, 4 * SIZE), (uint64_t)(WRITES + 1) * CLUSTER);
    check_clean(img, true);

    CHECK_OK(qcowkit_make_empty(img));
    CHECK_EQ_U64(allocated(img, 4 * SIZE), 0);
    CHECK_OK(qcowkit_pread(img, buf, CLUSTER, at[0]));
    CHECK_ZERO(buf, CLUSTER);
    /* The clusters before the moved L1 table are left behind as leaks. */
    check_clean(img, false);
    CHECK_OK(qcowkit_close(img));
}

/* A 1 GiB image of 512-byte clusters whose L1 entries are given. */
static void craft(const char *path, const uint64_t *index,
                  const uint64_t *table, int n, uint64_t data)
{
    uint64_t l1 = 512, t0 = l1 + CSIZE / CSPAN * 8;
    uint8_t *f = test_xcalloc(t0 + 2 * CLUSTER);

    memcpy(f, "QFI\xfb", 4);
    test_put_be32(f + 4, 1);
    test_put_be64(f + 24, CSIZE);
    f[32] = 9;
    f[33] = 6;
    test_put_be64(f + 40, l1);
    for (int i = 0; i < n; i++)
        test_put_be64(f + l1 + index[i] * 8, t0 + table[i]);
    test_put_be64(f + t0, t0 + CLUSTER); /* guest cluster 0 of the table */
    fill(f + t0 + CLUSTER, data);
    test_write_file(path, f, t0 + 2 * CLUSTER);
    free(f);
}

static void part_kept(const char *path)
{
    /* Entry 100 and 3000 name the same table, 20000 one overlapping it. */
    const uint64_t index[] = {3000, 100, 20000};
    const uint64_t table[] = {0, 0, 256};
    struct qcowkit_check_report r = {.struct_size = sizeof r};
    struct qcowkit_image *img;
    uint8_t want[CLUSTER], got[CLUSTER];

    craft(path, index, table, 3, 100 * CSPAN);
    img = open_path(path, QCOWKIT_OPEN_RDONLY);
    fill(want, 100 * CSPAN);
    CHECK_OK(qcowkit_pread(img, got, CLUSTER, 100 * CSPAN));
    CHECK_MEM_EQ(got, want, CLUSTER);
    CHECK_ERR(qcowkit_pread(img, got, CLUSTER, 3000 * CSPAN), -EIO);
    CHECK_MSG_HAS("overlaps another L2 table");
    CHECK_ERR(qcowkit_pread(img, got, CLUSTER, 20000 * CSPAN), -EIO);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 2);
    qcowkit_close(img);
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void part_hostile(const char *path)
{
    uint8_t h[48] = {0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 1};
    struct qcowkit_image *img;
    struct qcowkit_extent e;
    uint8_t buf[65536];
    double start = now();
    int fd;

    test_put_be64(h + 24, UINT64_C(1) << 56);
    h[32] = 16;
    h[33] = 13;
    test_put_be64(h + 40, 4096);
    test_write_file(path, h, sizeof h);
    fd = open(path, O_WRONLY);
    CHECK(fd >= 0 && ftruncate(fd, 4096 + (INT64_C(1) << 30)) == 0);
    close(fd);
    img = open_path(path, QCOWKIT_OPEN_RDONLY);
    CHECK_OK(qcowkit_pread(img, buf, sizeof buf, 0));
    CHECK_ZERO(buf, sizeof buf);
    CHECK_OK(qcowkit_block_status(img, 0, UINT64_C(1) << 40, &e));
    CHECK_EQ_U64(e.length, UINT64_C(1) << 40);
    CHECK_EQ(e.flags & QCOWKIT_EXTENT_ALLOCATED, 0);
    qcowkit_close(img);
    /* Reading the table whole takes seconds; paged, milliseconds. */
    CHECK(now() - start < 5.0);
}

int main(void)
{
    char *dir = test_mkdtemp();
    char *path = test_path(dir, "paged.qcow");

    test_init(120);
    part_scattered(path);
    part_kept(path);
    part_hostile(path);
    printf("l1-paging: ok\n");
    free(path);
    free(dir);
    return 0;
}
