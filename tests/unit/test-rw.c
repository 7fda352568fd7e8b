/*
 * test-rw: reads and writes of every size and alignment, across clusters
 * and L2 tables, flush, close and reopen, every cluster size and the
 * extreme l2_bits values.
 */
#include "test.h"

/* Read the whole image and compare with the model, in odd-sized chunks. */
static void verify_all(struct qcowkit_image *img, const uint8_t *model,
                       uint64_t size)
{
    size_t chunk = 300007;
    uint8_t *buf = test_xmalloc(chunk);

    for (uint64_t off = 0; off < size; off += chunk) {
        size_t n = (size_t)(size - off < chunk ? size - off : chunk);
        CHECK_OK(qcowkit_pread(img, buf, n, off));
        if (memcmp(buf, model + off, n) != 0) {
            size_t d = 0;
            test_memdiff_(buf, model + off, n, &d);
            TEST_FAIL("image differs from model at guest offset %" PRIu64
                      ": 0x%02x != 0x%02x",
                      off + d, buf[d], model[off + d]);
        }
    }
    free(buf);
}

static void test_new_image_reads_zero(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(3 << 20, 0, NULL, "z", &io);
    uint8_t *buf = test_xmalloc(3 << 20);
    struct qcowkit_extent ext;

    memset(buf, 0xaa, 3 << 20);
    CHECK_OK(qcowkit_pread(img, buf, 3 << 20, 0));
    CHECK_ZERO(buf, 3 << 20);
    memset(buf, 0xaa, 100);
    CHECK_OK(qcowkit_pread(img, buf, 1, 12345));
    CHECK_EQ(buf[0], 0);
    CHECK_OK(qcowkit_pread(img, buf, 0, 0));

    /* Nothing is allocated. */
    CHECK_OK(qcowkit_block_status(img, 0, 3 << 20, &ext));
    CHECK_EQ_U64(ext.offset, 0);
    CHECK(ext.length > 0 && ext.length <= (3 << 20));
    CHECK_EQ(ext.flags & QCOWKIT_EXTENT_ALLOCATED, 0);

    /* Out of range. */
    CHECK(qcowkit_pread(img, buf, 1, 3 << 20) < 0);
    CHECK(qcowkit_pread(img, buf, 2, (3 << 20) - 1) < 0);
    CHECK(qcowkit_pread(img, buf, 1, UINT64_MAX) < 0);
    CHECK(qcowkit_pwrite(img, buf, 1, 3 << 20) < 0);
    CHECK(qcowkit_pwrite(img, buf, 16, UINT64_MAX - 8) < 0);
    CHECK(qcowkit_pwrite_zeroes(img, 2, (3 << 20) - 1) < 0);

    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    free(buf);
}

/* Writes of many sizes at unaligned offsets against a model. */
static void test_sizes_and_alignments(uint32_t cluster_size)
{
    const uint64_t size = 16 << 20;
    uint8_t *model = test_xcalloc(size);
    uint8_t *buf = test_xmalloc(6 << 20);
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(size, cluster_size, NULL, "rw.qcow", &io);
    static const size_t lens[] = {
        1,    2,    3,     7,     511,   512,    513,     4095,
        4096, 4097, 65535, 65536, 65537, 100000, 1 << 20, (5 << 20) + 123};
    uint32_t tag = 1;
    uint64_t off = 1;

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];

        /* Spread the writes, leaving some untouched gaps. */
        off = (off * 7919 + 4093 * i + 1) % (size - n);
        test_pattern(buf, n, off, tag++);
        CHECK_OK(qcowkit_pwrite(img, buf, n, off));
        memcpy(model + off, buf, n);
        /* Readable at once, and the neighbours are intact. */
        {
            uint64_t lo = off > 700 ? off - 700 : 0;
            uint64_t hi = off + n + 700 < size ? off + n + 700 : size;
            uint8_t *rb = test_xmalloc((size_t)(hi - lo));
            CHECK_OK(qcowkit_pread(img, rb, (size_t)(hi - lo), lo));
            CHECK_MEM_EQ(rb, model + lo, (size_t)(hi - lo));
            free(rb);
        }
    }
    /* Overwrites of partly written clusters. */
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + (size_t)((i * 2654435761u) % 9000);
        uint64_t o = ((uint64_t)i * 97531 * 13) % (size - n);
        test_pattern(buf, n, o, tag++);
        CHECK_OK(qcowkit_pwrite(img, buf, n, o));
        memcpy(model + o, buf, n);
    }
    /* The last byte and the first byte. */
    buf[0] = 0x11;
    CHECK_OK(qcowkit_pwrite(img, buf, 1, size - 1));
    model[size - 1] = 0x11;
    buf[0] = 0x22;
    CHECK_OK(qcowkit_pwrite(img, buf, 1, 0));
    model[0] = 0x22;

    verify_all(img, model, size);
    CHECK_OK(qcowkit_flush(img));
    verify_all(img, model, size);
    CHECK_OK(qcowkit_close(img));

    img = test_open_io(io, "rw.qcow", QCOWKIT_OPEN_RDONLY);
    verify_all(img, model, size);
    CHECK_OK(qcowkit_close(img));

    /* Reopen read-write and keep writing. */
    img = test_open_io(io, "rw.qcow", QCOWKIT_OPEN_RDWR);
    test_pattern(buf, 3 * cluster_size, 99, tag++);
    CHECK_OK(qcowkit_pwrite(img, buf, 3 * cluster_size, size / 2 + 3));
    memcpy(model + size / 2 + 3, buf, 3 * cluster_size);
    CHECK_OK(qcowkit_close(img));
    img = test_open_io(io, "rw.qcow", QCOWKIT_OPEN_RDONLY);
    verify_all(img, model, size);
    CHECK_OK(qcowkit_close(img));

    qcowkit_io_close(io);
    free(model);
    free(buf);
}

/* Zero writes and block status of a simple image. */
static void test_zeroes_and_status(void)
{
    const uint64_t size = 1 << 20;
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(size, 4096, NULL, "s", &io);
    uint8_t buf[3 * 4096];
    struct qcowkit_extent ext;
    struct qcowkit_info info;

    test_pattern(buf, sizeof(buf), 0, 5);
    CHECK_OK(qcowkit_pwrite(img, buf, 8192, 8192));
    CHECK_OK(qcowkit_block_status(img, 8192, size - 8192, &ext));
    CHECK_EQ_U64(ext.offset, 8192);
    CHECK(ext.flags & QCOWKIT_EXTENT_ALLOCATED);
    CHECK_EQ(ext.flags & QCOWKIT_EXTENT_COMPRESSED, 0);
    CHECK(ext.length >= 4096 && ext.length <= 8192);
    if (ext.flags & QCOWKIT_EXTENT_HOST_OFFSET) {
        info = test_info(img);
        CHECK_EQ(ext.host_offset % 4096, 0);
        CHECK(ext.host_offset > 48);
        CHECK(ext.host_offset + ext.length <= info.file_size ||
              info.file_size == 0);
    }
    /* Block status from an unaligned offset inside the cluster. */
    CHECK_OK(qcowkit_block_status(img, 8192 + 100, 50, &ext));
    CHECK_EQ_U64(ext.offset, 8192 + 100);
    CHECK(ext.length > 0 && ext.length <= 50);
    CHECK(ext.flags & QCOWKIT_EXTENT_ALLOCATED);
    if (ext.flags & QCOWKIT_EXTENT_HOST_OFFSET)
        CHECK_EQ(ext.host_offset % 4096, 100);

    /* Before the data: unallocated, ending where the data begins. */
    CHECK_OK(qcowkit_block_status(img, 0, size, &ext));
    CHECK_EQ_U64(ext.offset, 0);
    CHECK_EQ(ext.flags & QCOWKIT_EXTENT_ALLOCATED, 0);
    CHECK_EQ_U64(ext.length, 8192);

    /* Zeroes over data read as zeros; partial ones too. */
    CHECK_OK(qcowkit_pwrite_zeroes(img, 100, 8192 + 50));
    CHECK_OK(qcowkit_pread(img, buf, sizeof(buf), 8192));
    CHECK_ZERO(buf + 50, 100);
    {
        uint8_t want[3 * 4096];
        test_pattern(want, sizeof(want), 0, 5);
        CHECK_MEM_EQ(buf, want, 50);
        CHECK_MEM_EQ(buf + 150, want + 150, 8192 - 150);
    }
    CHECK_OK(qcowkit_pwrite_zeroes(img, 8192, 8192));
    CHECK_OK(qcowkit_pread(img, buf, 8192, 8192));
    CHECK_ZERO(buf, 8192);

    /* Zeroes over unallocated clusters keep them unallocated. */
    CHECK_OK(qcowkit_pwrite_zeroes(img, 65536, 65536));
    CHECK_OK(qcowkit_block_status(img, 65536, 65536, &ext));
    CHECK_EQ(ext.flags & QCOWKIT_EXTENT_ALLOCATED, 0);
    CHECK_EQ_U64(ext.length, 65536);
    CHECK_OK(qcowkit_pwrite_zeroes(img, 0, 0));

    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

/*
 * Crafted headers: every cluster size with the smallest, largest and
 * usual l2_bits.  Writes around and across L2 table boundaries.
 */
static void test_geometry(unsigned cb, unsigned l2b)
{
    uint64_t cs = UINT64_C(1) << cb;
    uint64_t span = UINT64_C(1) << (cb + l2b); /* bytes per L2 table */
    uint64_t size = 3 * span + 5 * 512;
    struct test_header h;
    size_t len;
    uint8_t *bytes, *buf, *back, *want;
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    struct qcowkit_info info;
    uint64_t offs[8];
    size_t lens[8];
    int nw = 0;

    test_header_init(&h, size, cb, l2b);
    bytes = test_craft_image(&h, NULL, 0, &len);
    img = test_mem_image_bytes(bytes, len, &io);
    free(bytes);
    info = test_info(img);
    CHECK_EQ(info.cluster_size, cs);
    CHECK_EQ(info.cluster_bits, cb);
    CHECK_EQ(info.l2_bits, l2b);
    CHECK_EQ_U64(info.virtual_size, size);

    /* Non-overlapping writes chosen around the interesting places. */
    offs[nw] = 0, lens[nw++] = 1;
    offs[nw] = cs - 3, lens[nw++] = 7; /* across the first cluster */
    offs[nw] = span - cs / 2 - 1, lens[nw++] = (size_t)cs + 2; /* L2 edge */
    offs[nw] = 2 * span - 2 * cs - 5,
    lens[nw++] = (size_t)(3 * cs + 9); /* several clusters across L2 edge */
    offs[nw] = 3 * span - 1, lens[nw++] = 2;   /* into the last L2 table */
    offs[nw] = size - 1000, lens[nw++] = 1000; /* up to the end */
    offs[nw] = span + 777, lens[nw++] = 3;

    buf = test_xmalloc(4 * cs + 64);
    back = test_xmalloc(4 * cs + 64 + 2048);
    want = test_xmalloc(4 * cs + 64 + 2048);
    for (int i = 0; i < nw; i++) {
        test_pattern(buf, lens[i], offs[i], (uint32_t)(i + 1));
        CHECK_OK(qcowkit_pwrite(img, buf, lens[i], offs[i]));
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < nw; i++) {
            /* The range plus up to 1 KiB either side (zeros). */
            uint64_t lo = offs[i] > 1024 ? offs[i] - 1024 : 0;
            uint64_t hi = offs[i] + lens[i] + 1024;
            if (hi > size)
                hi = size;
            CHECK_OK(qcowkit_pread(img, back, (size_t)(hi - lo), lo));
            memset(want, 0, (size_t)(hi - lo));
            for (int j = 0; j < nw; j++) {
                uint64_t a = offs[j] > lo ? offs[j] : lo;
                uint64_t b = offs[j] + lens[j] < hi ? offs[j] + lens[j] : hi;
                if (a < b)
                    test_pattern(want + (a - lo), (size_t)(b - a), a,
                                 (uint32_t)(j + 1));
            }
            if (memcmp(back, want, (size_t)(hi - lo)) != 0) {
                size_t d = 0;
                test_memdiff_(back, want, (size_t)(hi - lo), &d);
                TEST_FAIL("cluster_bits %u l2_bits %u pass %d: guest offset "
                          "%" PRIu64 " reads 0x%02x, want 0x%02x",
                          cb, l2b, pass, lo + d, back[d], want[d]);
            }
        }
        CHECK_OK(qcowkit_close(img));
        img = test_open_io(io, "crafted.qcow", QCOWKIT_OPEN_RDWR);
    }
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    free(buf);
    free(back);
    free(want);
}

/* Guest offsets past 4 GiB (no 32-bit truncation anywhere). */
static void test_large_offsets(void)
{
    const uint64_t size = (UINT64_C(80) << 30) + 512;
    static const uint64_t offs[] = {
        (UINT64_C(1) << 32) - 3,  (UINT64_C(1) << 32) + 4096,
        (UINT64_C(1) << 33) - 1,  (UINT64_C(3) << 32) + 12345,
        (UINT64_C(64) << 30) - 2, size - 700};
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(size, 0, NULL, "big", &io);
    uint8_t buf[700], back[700 + 64];

    CHECK_EQ_U64(test_info(img).virtual_size, size);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
            test_pattern(buf, sizeof(buf), offs[i], 60);
            if (pass == 0)
                CHECK_OK(qcowkit_pwrite(img, buf, sizeof(buf), offs[i]));
            CHECK_OK(qcowkit_pread(img, back, sizeof(buf), offs[i]));
            CHECK_MEM_EQ(back, buf, sizeof(buf));
        }
        /* Low offsets that a truncated high offset would hit stay zero. */
        CHECK_OK(qcowkit_pread(img, back, sizeof(back), 0));
        CHECK_ZERO(back, sizeof(back));
        CHECK_OK(qcowkit_pread(img, back, sizeof(back), 12345 - 32));
        CHECK_ZERO(back, sizeof(back));
        CHECK_OK(qcowkit_close(img));
        img = test_open_io(io, "big", QCOWKIT_OPEN_RDWR);
    }
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

/* block_status host offsets point at the data in the file. */
static void test_host_offsets(void)
{
    const uint32_t cs = 4096;
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(1 << 20, cs, NULL, "h", &io);
    uint8_t *buf = test_xmalloc(16 * cs);
    struct qcowkit_extent ext;

    test_pattern(buf, 16 * cs, 0, 61);
    CHECK_OK(qcowkit_pwrite(img, buf, 4 * cs, 8 * cs));
    CHECK_OK(qcowkit_pwrite(img, buf + 4 * cs, 2 * cs, 100 * cs));
    CHECK_OK(qcowkit_flush(img));
    for (uint64_t g = 8 * cs; g < 12 * cs;) {
        size_t len;
        uint8_t *bytes;
        CHECK_OK(qcowkit_block_status(img, g, 12 * cs - g, &ext));
        CHECK_EQ_U64(ext.offset, g);
        CHECK(ext.flags & QCOWKIT_EXTENT_ALLOCATED);
        CHECK(ext.length >= cs && ext.length % cs == 0);
        if (!(ext.flags & QCOWKIT_EXTENT_HOST_OFFSET))
            TEST_FAIL("a normal allocated cluster has no host offset");
        bytes = test_mem_bytes(io, &len);
        CHECK(ext.host_offset + ext.length <= len);
        CHECK_MEM_EQ(bytes + ext.host_offset, buf + (g - 8 * cs),
                     (size_t)ext.length);
        free(bytes);
        g += ext.length;
    }
    CHECK_OK(qcowkit_block_status(img, 100 * cs + 10, 2 * cs, &ext));
    CHECK(ext.flags & QCOWKIT_EXTENT_HOST_OFFSET);
    CHECK(ext.length > 0 && ext.length <= 2 * cs);
    {
        size_t len;
        uint8_t *bytes = test_mem_bytes(io, &len);
        CHECK(ext.host_offset + ext.length <= len);
        CHECK_MEM_EQ(bytes + ext.host_offset, buf + 4 * cs + 10,
                     (size_t)ext.length);
        free(bytes);
    }
    /* A run of unallocated clusters in between is one extent. */
    CHECK_OK(qcowkit_block_status(img, 12 * cs, 88 * cs, &ext));
    CHECK_EQ(ext.flags & QCOWKIT_EXTENT_ALLOCATED, 0);
    CHECK_EQ_U64(ext.length, 88 * cs);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    free(buf);
}

/* A sparse raw file: its holes are runs of their own, flagged ZERO. */
static void test_raw_holes(void)
{
    char *dir = test_mkdtemp(), *path = test_path(dir, "sparse.raw");
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;
    struct qcowkit_extent e;
    uint8_t data[4096];

    qcowkit_create_opts_init(&co);
    co.format = QCOWKIT_FORMAT_RAW;
    co.size = 4 << 20;
    CHECK_OK(qcowkit_create(path, &co, 0));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    CHECK_OK(qcowkit_open(path, &oo, &img));
    memset(data, 0x7e, sizeof data);
    CHECK_OK(qcowkit_pwrite(img, data, sizeof data, 1 << 20));
    CHECK_OK(qcowkit_flush(img));
    CHECK_OK(qcowkit_block_status(img, 0, 4 << 20, &e));
    CHECK(e.flags & QCOWKIT_EXTENT_ALLOCATED);
    if (!(e.flags & QCOWKIT_EXTENT_ZERO)) {
        /* A file system that keeps no holes: all of it is data. */
        CHECK_EQ_U64(e.length, 4 << 20);
    } else {
        CHECK_EQ_U64(e.length, 1 << 20);
        CHECK_OK(qcowkit_block_status(img, 1 << 20, 3 << 20, &e));
        CHECK(!(e.flags & QCOWKIT_EXTENT_ZERO));
        CHECK(e.length >= sizeof data && e.length < (3 << 20));
        CHECK_OK(qcowkit_block_status(img, (1 << 20) + e.length,
                                      (3 << 20) - e.length, &e));
        CHECK(e.flags & QCOWKIT_EXTENT_ZERO);
    }
    qcowkit_close(img);
    free(path);
    free(dir);
}

int main(void)
{
    test_init(240);
    test_raw_holes();
    test_new_image_reads_zero();
    test_zeroes_and_status();
    test_large_offsets();
    test_host_offsets();
    test_sizes_and_alignments(4096);
    test_sizes_and_alignments(512);
    test_sizes_and_alignments(65536);
    for (unsigned cb = 9; cb <= 16; cb++) {
        test_geometry(cb, 6);
        test_geometry(cb, 13);
        test_geometry(cb, cb - 3);
    }
    printf("test-rw: ok\n");
    return 0;
}
