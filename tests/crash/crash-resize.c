/*
 * crash-resize: power lost at every write of growing an overlay (raw
 * backing file of random bytes, old end inside a cluster, the L1 table
 * moves).  After each crash the image must check without corruption and
 * read either at the old size, unchanged, or at the new size with zeros
 * in the grown range: never the backing file's bytes there.
 */
#include "test-backends.h"
#include "test.h"

#define OLD   ((UINT64_C(512) << 10) + 1536)
#define NEW   (UINT64_C(3) << 20) /* past one L2 table: the L1 table moves */
#define BLEN  (UINT64_C(2) << 20)
#define DATAB 0x5a

static char *g_name;

static struct qcowkit_image *open_over(struct qcowkit_io *io)
{
    return test_open_io(io, g_name, QCOWKIT_OPEN_RDWR);
}

/* Start: the overlay with some data, flushed; its bytes. */
static uint8_t *start_image(size_t *len)
{
    struct qcowkit_io *io = test_mem_io(NULL, 0);
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    uint8_t buf[3000];
    uint8_t *bytes;

    test_create_opts(&co, OLD, 4096, "base.raw");
    CHECK_OK(qcowkit_create_io(io, g_name, &co));
    img = open_over(io);
    memset(buf, DATAB, sizeof buf);
    CHECK_OK(qcowkit_pwrite(img, buf, sizeof buf, 70000));
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, len);
    qcowkit_io_close(io);
    return bytes;
}

/* Run the grow over a crash backend armed at write k (0: not armed). */
static uint64_t grow(const uint8_t *start, size_t len, uint64_t k,
                     struct qcowkit_io **crash, struct qcowkit_io **inner)
{
    struct qcowkit_image *img;
    uint64_t writes;

    *inner = test_mem_io(start, len);
    CHECK_OK(crash_backend_new(*inner, crash));
    img = open_over(*crash);
    if (k)
        CHECK_OK(crash_backend_arm(*crash, k));
    if (qcowkit_resize(img, NEW) == 0 && k == 0)
        CHECK_OK(qcowkit_flush(img));
    qcowkit_close(img);
    writes = crash_backend_writes(*crash);
    return writes;
}

static void verify(struct qcowkit_io *after, const uint8_t *backing)
{
    struct qcowkit_check_report r = {.struct_size = sizeof r};
    struct qcowkit_image *img = open_over(after);
    uint64_t size = test_info(img).virtual_size;
    uint8_t *buf = test_xmalloc(NEW);

    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    CHECK(size == OLD || size == NEW);
    CHECK_OK(qcowkit_pread(img, buf, size, 0));
    for (uint64_t i = 0; i < size; i++) {
        uint8_t want = i >= OLD                  ? 0
                       : i >= 70000 && i < 73000 ? DATAB
                                                 : backing[i];
        if (buf[i] != want)
            TEST_FAIL("size %llu: byte %llu is 0x%02x, not 0x%02x",
                      (unsigned long long)size, (unsigned long long)i, buf[i],
                      want);
    }
    free(buf);
    CHECK_OK(qcowkit_close(img));
}

int main(void)
{
    char *dir = test_mkdtemp();
    char *bpath = test_path(dir, "base.raw");
    uint8_t *backing = test_xmalloc(BLEN);
    struct test_rng rng;
    struct qcowkit_io *crash, *inner;
    uint64_t n, images = 0;
    uint8_t *start;
    size_t len;

    test_init(300);
    test_rng_seed(&rng, 8);
    test_rng_fill(&rng, backing, BLEN);
    backing[0] = 0; /* never a qcow magic */
    test_write_file(bpath, backing, BLEN);
    g_name = test_path(dir, "overlay.qcow");
    start = start_image(&len);
    n = grow(start, len, 0, &crash, &inner);
    qcowkit_io_close(crash);
    qcowkit_io_close(inner);
    for (uint64_t k = 1; k <= n; k++) {
        grow(start, len, k, &crash, &inner);
        for (int mode = 0; mode < 5; mode++) {
            struct qcowkit_io *after;
            enum crash_mode m = mode == 0   ? CRASH_DROP_ALL
                                : mode == 1 ? CRASH_KEEP_ALL
                                            : CRASH_RANDOM;
            CHECK_OK(
                crash_backend_image(crash, m, k * 7 + (uint64_t)mode, &after));
            verify(after, backing);
            qcowkit_io_close(after);
            images++;
        }
        qcowkit_io_close(crash);
        qcowkit_io_close(inner);
    }
    printf("crash-resize: %llu crash points, %llu images: ok\n",
           (unsigned long long)n, (unsigned long long)images);
    free(start);
    free(backing);
    free(bpath);
    free(g_name);
    test_rm_rf(dir);
    free(dir);
    return 0;
}
