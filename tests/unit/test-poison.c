/*
 * test-poison (from a hostile review of the issue 8 fixes): a guest cluster
 * whose entry was poisoned at first table load (it pointed past the end
 * of the file at open) stays poisoned after this handle gives it a new
 * cluster of its own, so
 *   1. a whole-cluster write over a poisoned compressed entry returns 0,
 *      then reads fail with EIO, and qcowkit_check(REPAIR_ALL) on the same
 *      handle clears the entry: the acknowledged write is lost for good;
 *   2. growing an overlay whose last L2 table holds stale entries past the
 *      old end (pointing past EOF) makes the grown range fail with EIO
 *      instead of reading zeros (fix 3).
 * QCOWKIT_POISON_PART=1 or 2 runs only that part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* cluster_bits 12, l2_bits 9; L1 at l1off with one entry -> L2 at 4096. */
static void craft(const char *path, uint64_t size, const char *backing,
                  const uint64_t *l2, int n)
{
    uint8_t *f = test_xcalloc(8192);
    size_t blen = backing ? strlen(backing) : 0;
    uint64_t l1off = backing ? 64 : 48;
    FILE *fp;

    memcpy(f, "QFI\xfb", 4);
    put_be32(f + 4, 1);
    if (backing) {
        put_be64(f + 8, 48);
        put_be32(f + 16, (uint32_t)blen);
        memcpy(f + 48, backing, blen);
    }
    put_be64(f + 24, size);
    f[32] = 12;
    f[33] = 9;
    put_be64(f + 40, l1off);
    put_be64(f + l1off, 4096);
    for (int i = 0; i < n; i++)
        put_be64(f + 4096 + i * 8, l2[i]);
    fp = fopen(path, "wb");
    CHECK(fp && fwrite(f, 8192, 1, fp) == 1 && fclose(fp) == 0);
    free(f);
}

static struct qcowkit_image *open_rw(const char *path)
{
    struct qcowkit_open_opts o;
    struct qcowkit_image *img;

    qcowkit_open_opts_init(&o);
    o.flags = QCOWKIT_OPEN_RDWR;
    CHECK_OK(qcowkit_open(path, &o, &img));
    return img;
}

static void poisoned_write_lost(const char *dir)
{
    char path[512];
    /* compressed, 100 bytes at 40960: past the end of the 8 KiB file */
    uint64_t l2[1] = {UINT64_C(1) << 63 | UINT64_C(100) << 51 | 40960};
    uint8_t buf[4096], got[4096];
    struct qcowkit_image *img;
    struct qcowkit_check_report r = {.struct_size = sizeof r};

    snprintf(path, sizeof path, "%s/p.qcow", dir);
    craft(path, 1 << 20, NULL, l2, 1);
    img = open_rw(path);
    memset(buf, 0xaa, sizeof buf);
    CHECK_OK(qcowkit_pwrite(img, buf, sizeof buf, 0));
    CHECK_OK(qcowkit_check(img, QCOWKIT_CHECK_REPAIR_ALL, NULL, NULL, &r));
    CHECK_OK(qcowkit_pread(img, got, sizeof got, 0));
    CHECK_MEM_EQ(got, buf, sizeof buf);
    CHECK_OK(qcowkit_close(img));
}

static void grown_range_eio(const char *dir)
{
    char path[512], bpath[512];
    uint64_t l2[4] = {0, 0, 1 << 20, 2 << 20}; /* past the 8 KiB end */
    uint8_t *b = test_xmalloc(1 << 20), got[8192];
    struct qcowkit_image *img;
    FILE *fp;

    snprintf(bpath, sizeof bpath, "%s/bk.raw", dir);
    memset(b, 0x77, 1 << 20);
    fp = fopen(bpath, "wb");
    CHECK(fp && fwrite(b, 1 << 20, 1, fp) == 1 && fclose(fp) == 0);
    free(b);
    snprintf(path, sizeof path, "%s/g.qcow", dir);
    craft(path, 8192, "bk.raw", l2, 4);
    img = open_rw(path);
    CHECK_OK(qcowkit_resize(img, 16384));
    CHECK_OK(qcowkit_pread(img, got, sizeof got, 8192));
    CHECK_ZERO(got, sizeof got);
    CHECK_OK(qcowkit_close(img));
}

int main(void)
{
    const char *part = getenv("QCOWKIT_POISON_PART");
    char *dir;

    test_init(60);
    dir = test_mkdtemp(); /* removed at exit */
    if (!part || strcmp(part, "2"))
        poisoned_write_lost(dir);
    if (!part || strcmp(part, "1"))
        grown_range_eio(dir);
    free(dir);
    printf("ok\n");
    return 0;
}
