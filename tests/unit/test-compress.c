/*
 * test-compress: compressed cluster writes, block status, overwrites in
 * both directions, the partial last cluster, and the on-disk encoding
 * (raw deflate, as QEMU reads it).
 */
#include <zlib.h>

#include "test.h"

static void check_read(struct qcowkit_image *img, const uint8_t *want, size_t n,
                       uint64_t off, const char *what)
{
    uint8_t *buf = test_xmalloc(n);

    memset(buf, 0xee, n);
    CHECK_OK(qcowkit_pread(img, buf, n, off));
    if (memcmp(buf, want, n) != 0) {
        size_t d = 0;
        test_memdiff_(buf, want, n, &d);
        TEST_FAIL("%s: guest offset %" PRIu64 " reads 0x%02x, want 0x%02x",
                  what, off + d, buf[d], want[d]);
    }
    free(buf);
}

static unsigned status_flags(struct qcowkit_image *img, uint64_t off,
                             uint64_t count)
{
    struct qcowkit_extent ext;

    memset(&ext, 0, sizeof(ext));
    CHECK_OK(qcowkit_block_status(img, off, count, &ext));
    CHECK_EQ_U64(ext.offset, off);
    CHECK(ext.length > 0 && ext.length <= count);
    return ext.flags;
}

/* Check the stored form of a compressed cluster in the image bytes. */
static void check_on_disk(struct qcowkit_io *io, uint64_t guest,
                          const uint8_t *want, size_t cs, unsigned cb)
{
    size_t len;
    uint8_t *img = test_mem_bytes(io, &len);
    uint64_t pos = test_l2_entry_pos(img, len, guest, NULL);
    uint64_t entry, coff, csize;
    uint8_t *out = test_xmalloc(cs);
    z_stream zs;
    int zr;

    CHECK(pos != 0);
    entry = test_get_be64(img + pos);
    CHECK(entry & TEST_OFLAG_COMPRESSED);
    csize = (entry >> (63 - cb)) & (cs - 1);
    coff = entry & ((UINT64_C(1) << (63 - cb)) - 1);
    CHECK(csize > 0 && csize < cs);
    CHECK(coff + csize <= len);

    memset(&zs, 0, sizeof(zs));
    CHECK_EQ(inflateInit2(&zs, -12), Z_OK);
    zs.next_in = img + coff;
    zs.avail_in = (uInt)csize;
    zs.next_out = out;
    zs.avail_out = (uInt)cs;
    zr = inflate(&zs, Z_FINISH);
    CHECK(zr == Z_STREAM_END || zr == Z_BUF_ERROR);
    CHECK_EQ(zs.total_out, cs);
    inflateEnd(&zs);
    CHECK_MEM_EQ(out, want, cs);
    free(out);
    free(img);
}

static void test_cluster_size(unsigned cb)
{
    const size_t cs = (size_t)1 << cb;
    const uint64_t size = 16 * cs + 1024; /* last cluster is partial */
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(size, (uint32_t)cs, NULL, "c.qcow", &io);
    uint8_t *model = test_xcalloc(size);
    uint8_t *buf = test_xmalloc(4 * cs);
    struct test_rng rng;
    unsigned f;
    char what[64];

    snprintf(what, sizeof(what), "cluster size %zu", cs);
    test_rng_seed(&rng, cb);

    /* 1. A compressible cluster. */
    test_compressible(buf, cs, 1);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 0));
    memcpy(model, buf, cs);
    check_read(img, model, cs, 0, what);
    f = status_flags(img, 0, size);
    CHECK(f & QCOWKIT_EXTENT_ALLOCATED);
    CHECK(f & QCOWKIT_EXTENT_COMPRESSED);

    /* 2. An incompressible cluster is stored normally. */
    test_rng_fill(&rng, buf, cs);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, cs));
    memcpy(model + cs, buf, cs);
    check_read(img, model, 2 * cs, 0, what);
    f = status_flags(img, cs, size - cs);
    CHECK(f & QCOWKIT_EXTENT_ALLOCATED);
    CHECK_EQ(f & QCOWKIT_EXTENT_COMPRESSED, 0);

    /* 3. Several clusters in one call, mixed. */
    test_compressible(buf, cs, 2);
    test_rng_fill(&rng, buf + cs, cs);
    memset(buf + 2 * cs, 0, cs);
    test_compressible(buf + 3 * cs, cs, 3);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, 4 * cs, 2 * cs));
    memcpy(model + 2 * cs, buf, 4 * cs);
    check_read(img, model, 6 * cs, 0, what);
    CHECK(status_flags(img, 2 * cs, cs) & QCOWKIT_EXTENT_COMPRESSED);
    CHECK_EQ(status_flags(img, 3 * cs, cs) & QCOWKIT_EXTENT_COMPRESSED, 0);
    CHECK(status_flags(img, 5 * cs, cs) & QCOWKIT_EXTENT_COMPRESSED);

    /* 4. A compressed write over a normally allocated cluster. */
    test_pattern(buf, cs, 6 * cs, 4);
    CHECK_OK(qcowkit_pwrite(img, buf, cs, 6 * cs));
    test_compressible(buf, cs, 5);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 6 * cs));
    memcpy(model + 6 * cs, buf, cs);
    check_read(img, model, 8 * cs, 0, what);

    /* 5. A compressed write over a compressed cluster. */
    test_compressible(buf, cs, 6);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 0));
    memcpy(model, buf, cs);
    check_read(img, model, 8 * cs, 0, what);
    CHECK(status_flags(img, 0, cs) & QCOWKIT_EXTENT_COMPRESSED);

    /* 6. A partial normal write over a compressed cluster merges. */
    test_compressible(buf, cs, 7);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 8 * cs));
    memcpy(model + 8 * cs, buf, cs);
    test_pattern(buf, 100, 8 * cs + cs / 3, 8);
    CHECK_OK(qcowkit_pwrite(img, buf, 100, 8 * cs + cs / 3));
    memcpy(model + 8 * cs + cs / 3, buf, 100);
    check_read(img, model, 9 * cs, 0, what);
    f = status_flags(img, 8 * cs, cs);
    CHECK(f & QCOWKIT_EXTENT_ALLOCATED);
    CHECK_EQ(f & QCOWKIT_EXTENT_COMPRESSED, 0);
    /* Across a compressed and a normal cluster boundary. */
    test_compressible(buf, cs, 9);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 9 * cs));
    memcpy(model + 9 * cs, buf, cs);
    test_pattern(buf, 50, 9 * cs - 25, 10);
    CHECK_OK(qcowkit_pwrite(img, buf, 50, 9 * cs - 25));
    memcpy(model + 9 * cs - 25, buf, 50);
    check_read(img, model, 11 * cs, 0, what);
    /* Zeroes over part of a compressed cluster. */
    test_compressible(buf, cs, 11);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 10 * cs));
    memcpy(model + 10 * cs, buf, cs);
    CHECK_OK(qcowkit_pwrite_zeroes(img, cs / 2, 10 * cs + 7));
    memset(model + 10 * cs + 7, 0, cs / 2);
    check_read(img, model, 11 * cs, 0, what);

    /* 7. The partial last cluster (1024 bytes). */
    test_compressible(buf, 1024, 12);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, 1024, 16 * cs));
    memcpy(model + 16 * cs, buf, 1024);
    check_read(img, model, (size_t)size, 0, what);
    /* Also incompressible. */
    test_rng_fill(&rng, buf, 1024);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, 1024, 16 * cs));
    memcpy(model + 16 * cs, buf, 1024);
    check_read(img, model, (size_t)size, 0, what);
    /* A whole cluster plus the partial one, ending at the size. */
    test_compressible(buf, cs + 1024, 13);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs + 1024, 15 * cs));
    memcpy(model + 15 * cs, buf, cs + 1024);
    check_read(img, model, (size_t)size, 0, what);

    /* 8. Bad arguments. */
    CHECK_ERR(qcowkit_pwrite_compressed(img, buf, cs, 512 + (cs > 512 ? 0 : 1)),
              -EINVAL);
    CHECK_ERR(qcowkit_pwrite_compressed(img, buf, cs / 2, 12 * cs), -EINVAL);
    CHECK_ERR(qcowkit_pwrite_compressed(img, buf, cs + 1, 12 * cs), -EINVAL);
    CHECK(qcowkit_pwrite_compressed(img, buf, 3 * cs, 16 * cs) < 0);
    check_read(img, model, (size_t)size, 0, "after rejected writes");

    /* 9. Durable and QEMU-readable. */
    CHECK_OK(qcowkit_flush(img));
    test_compressible(buf, cs, 6);
    check_on_disk(io, 0, buf, cs, cb);
    test_compressible(buf, cs, 2);
    check_on_disk(io, 2 * cs, buf, cs, cb);
    CHECK_OK(qcowkit_close(img));
    img = test_open_io(io, "c.qcow", QCOWKIT_OPEN_RDONLY);
    check_read(img, model, (size_t)size, 0, "reopened");
    CHECK(status_flags(img, 0, cs) & QCOWKIT_EXTENT_COMPRESSED);
    CHECK_OK(qcowkit_close(img));

    qcowkit_io_close(io);
    free(model);
    free(buf);
}

/* Compressed writes on an overlay keep the rest from the backing file. */
static void test_overlay(void)
{
    char *dir = test_mkdtemp();
    char *base = test_path(dir, "b.raw");
    char *top = test_path(dir, "t.qcow");
    const size_t size = 256 * 1024;
    uint8_t *model = test_xmalloc(size);
    uint8_t buf[4096];
    struct qcowkit_image *img;

    test_pattern(model, size, 0, 77);
    test_write_file(base, model, size);
    test_create_file(top, size, 4096, "b.raw");
    img = test_open_file(top, QCOWKIT_OPEN_RDWR);
    test_compressible(buf, sizeof(buf), 78);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, sizeof(buf), 8192));
    memcpy(model + 8192, buf, sizeof(buf));
    test_pattern(buf, 10, 8192 + 4000, 79);
    CHECK_OK(qcowkit_pwrite(img, buf, 10, 8192 + 4000));
    memcpy(model + 8192 + 4000, buf, 10);
    check_read(img, model, size, 0, "compressed on overlay");
    CHECK_OK(qcowkit_close(img));
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
    check_read(img, model, size, 0, "compressed on overlay reopened");
    CHECK_OK(qcowkit_close(img));
    free(model);
    free(base);
    free(top);
    free(dir);
}

/* The two-step API: deflate without the image, store in a chosen order. */
static void test_deflater(uint32_t cs)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(16 * (uint64_t)cs + 512, cs, NULL, "d.qcow", &io);
    struct qcowkit_deflater *d;
    struct qcowkit_extent e;
    struct test_rng rng;
    uint8_t *text = test_xmalloc(cs), *noise = test_xmalloc(cs);
    uint8_t *out = test_xmalloc(cs), *back = test_xmalloc(cs);
    size_t len;

    test_rng_seed(&rng, cs);
    test_compressible(text, cs, 7);
    test_rng_fill(&rng, noise, cs);
    CHECK_OK(qcowkit_deflater_new(img, &d));
    CHECK_OK(qcowkit_deflate_cluster(d, noise, cs, out, &len));
    CHECK_EQ(len, 0);
    CHECK_OK(qcowkit_deflate_cluster(d, text, cs, out, &len));
    CHECK(len > 0 && len < cs);
    /* Stored out of order: the last cluster first. */
    CHECK_OK(qcowkit_pwrite_deflated(img, out, len, 5 * (uint64_t)cs));
    CHECK_OK(qcowkit_pwrite_deflated(img, out, len, 2 * (uint64_t)cs));
    CHECK_OK(qcowkit_pread(img, back, cs, 5 * (uint64_t)cs));
    CHECK_MEM_EQ(back, text, cs);
    CHECK_OK(qcowkit_pread(img, back, cs, 2 * (uint64_t)cs));
    CHECK_MEM_EQ(back, text, cs);
    CHECK_OK(qcowkit_block_status(img, 2 * (uint64_t)cs, cs, &e));
    CHECK(e.flags & QCOWKIT_EXTENT_COMPRESSED);
    /* The 512-byte tail cluster, padded. */
    CHECK_OK(qcowkit_deflate_cluster(d, text, 512, out, &len));
    CHECK(len > 0);
    CHECK_OK(qcowkit_pwrite_deflated(img, out, len, 16 * (uint64_t)cs));
    CHECK_OK(qcowkit_pread(img, back, 512, 16 * (uint64_t)cs));
    CHECK_MEM_EQ(back, text, 512);
    /* Refusals. */
    CHECK_ERR(qcowkit_deflate_cluster(d, text, cs + 1, out, &len), -EINVAL);
    CHECK_ERR(qcowkit_deflate_cluster(d, text, 0, out, &len), -EINVAL);
    CHECK_ERR(qcowkit_pwrite_deflated(img, out, 0, 0), -EINVAL);
    CHECK_ERR(qcowkit_pwrite_deflated(img, out, cs, 0), -EINVAL);
    CHECK_ERR(qcowkit_pwrite_deflated(img, out, 10, 512 + (cs > 512 ? 0 : 1)),
              -EINVAL);
    CHECK_ERR(qcowkit_pwrite_deflated(img, out, 10, 17 * (uint64_t)cs),
              -EINVAL);
    qcowkit_deflater_free(d);
    qcowkit_close(img);
    qcowkit_io_close(io);
    free(text);
    free(noise);
    free(out);
    free(back);
}

int main(void)
{
    test_init(120);
    for (unsigned cb = 9; cb <= 16; cb++)
        test_cluster_size(cb);
    test_overlay();
    for (uint32_t cs = 512; cs <= 65536; cs *= 4)
        test_deflater(cs);
    printf("test-compress: ok\n");
    return 0;
}
