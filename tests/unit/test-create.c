/*
 * test-create: qcowkit_create / qcowkit_create_io produce the same bytes
 * as `qemu-img create -f qcow`, and the options behave as documented.
 */
#include "test.h"

/*
 * The expected bytes of a fresh image, written out field by field (the
 * layout qemu-img produces; mtime is 0).
 */
static uint8_t *expected_image(uint64_t size, const char *backing,
                               unsigned cluster_bits, unsigned l2_bits,
                               size_t *len)
{
    size_t blen = backing ? strlen(backing) : 0;
    uint64_t rsize = (size + 511) & ~(uint64_t)511;
    size_t hsize = (48 + blen + 7) & ~(size_t)7;
    uint64_t l1 = test_l1_entries(rsize, cluster_bits, l2_bits);
    size_t l1_bytes = (size_t)((l1 * 8 + 511) / 512 * 512);
    uint8_t *b;

    *len = hsize + l1_bytes;
    b = test_xcalloc(*len);
    memcpy(b, "QFI\xfb", 4);
    test_put_be32(b + 4, 1);
    test_put_be64(b + 8, backing ? 48 : 0);
    test_put_be32(b + 16, (uint32_t)blen);
    test_put_be32(b + 20, 0);
    test_put_be64(b + 24, rsize);
    b[32] = (uint8_t)cluster_bits;
    b[33] = (uint8_t)l2_bits;
    test_put_be16(b + 34, 0);
    test_put_be32(b + 36, 0);
    test_put_be64(b + 40, hsize);
    if (backing)
        memcpy(b + 48, backing, blen);
    return b;
}

static void check_mem_create(uint64_t size, const char *backing,
                             unsigned cluster_bits, unsigned l2_bits)
{
    struct qcowkit_create_opts co;
    struct qcowkit_io *io = test_mem_io(NULL, 0);
    size_t len, elen;
    uint8_t *got, *want;

    test_create_opts(&co, size, 0, backing);
    CHECK_OK(qcowkit_create_io(io, "new.qcow", &co));
    got = test_mem_bytes(io, &len);
    want = expected_image(size, backing, cluster_bits, l2_bits, &elen);
    if (len != elen)
        TEST_FAIL("size %" PRIu64 " backing %s: file is %zu bytes, qemu-img "
                  "makes %zu",
                  size, backing ? backing : "(none)", len, elen);
    CHECK_MEM_EQ(got, want, len);
    free(got);
    free(want);
    qcowkit_io_close(io);
}

/* The two layouts the task spells out, byte for byte. */
static void test_qemu_layouts(void)
{
    /* 1 MiB, no backing: 4 KiB clusters, 4 KiB L2 tables. */
    static const uint8_t hdr_plain[48] = {
        0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,    0, 0,
        0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0,
        12,   9,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    0, 48,
    };
    /* 1 MiB, backing "base.img": 512 B clusters, 32 KiB L2 tables. */
    static const uint8_t hdr_backing[56] = {
        0x51, 0x46, 0x49, 0xfb, 0, 0,  0,   1,   0,   0,   0,   0,   0,   0,
        0,    48,   0,    0,    0, 8,  0,   0,   0,   0,   0,   0,   0,   0,
        0,    0x10, 0,    0,    9, 12, 0,   0,   0,   0,   0,   0,   0,   0,
        0,    0,    0,    0,    0, 56, 'b', 'a', 's', 'e', '.', 'i', 'm', 'g',
    };
    struct qcowkit_create_opts co;
    struct qcowkit_io *io;
    const uint8_t *data;
    size_t len;

    io = test_mem_io(NULL, 0);
    test_create_opts(&co, 1 << 20, 0, NULL);
    CHECK_OK(qcowkit_create_io(io, "plain.qcow", &co));
    CHECK_OK(qcowkit_io_memory_data(io, &data, &len));
    CHECK_EQ(len, 560);
    CHECK_MEM_EQ(data, hdr_plain, 48);
    CHECK_ZERO(data + 48, 512);
    qcowkit_io_close(io);

    io = test_mem_io(NULL, 0);
    test_create_opts(&co, 1 << 20, 0, "base.img");
    CHECK_OK(qcowkit_create_io(io, "overlay.qcow", &co));
    CHECK_OK(qcowkit_io_memory_data(io, &data, &len));
    CHECK_EQ(len, 568);
    CHECK_MEM_EQ(data, hdr_backing, 56);
    CHECK_ZERO(data + 56, 512);
    qcowkit_io_close(io);
}

static void test_many_sizes(void)
{
    static const uint64_t sizes[] = {
        2,
        511,
        512,
        1000,
        4096,
        (1 << 20) - 1,
        1 << 20,
        (1 << 21) + 1,
        130ull << 20, /* 65 L1 entries: 520 bytes, two sectors */
        1ull << 30,
        3ull << 30,
        (64ull << 30) + 512,
    };
    static const char *backings[] = {NULL, "b", "base.img", "1234567",
                                     "a-longer/relative/../name.qcow"};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t j = 0; j < sizeof(backings) / sizeof(backings[0]); j++) {
            if (backings[j])
                check_mem_create(sizes[i], backings[j], 9, 12);
            else
                check_mem_create(sizes[i], NULL, 12, 9);
        }
    }
    /* A few sizes cross-checked against qemu-img 7.2 by hand. */
    CHECK_EQ(test_qemu_file_size(1024, 12, 9, 0), 560);
    CHECK_EQ(test_qemu_file_size(130ull << 20, 12, 9, 0), 1072);
    CHECK_EQ(test_qemu_file_size(1ull << 30, 12, 9, 0), 4144);
    CHECK_EQ(test_qemu_file_size(3ull << 30, 12, 9, 0), 12336);
    CHECK_EQ(test_qemu_file_size(130ull << 20, 9, 12, 14), 1088);
}

static void test_file_create(void)
{
    char *dir = test_mkdtemp();
    char *p1 = test_path(dir, "plain.qcow");
    char *p2 = test_path(dir, "overlay.qcow");
    char *p3 = test_path(dir, "disk.raw");
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    struct qcowkit_info info;
    uint8_t *got, *want;
    size_t len, elen;
    uint8_t buf[4096];

    test_create_opts(&co, 1 << 20, 0, NULL);
    CHECK_OK(qcowkit_create(p1, &co, 0));
    got = test_read_file(p1, &len);
    want = expected_image(1 << 20, NULL, 12, 9, &elen);
    CHECK_EQ(len, elen);
    CHECK_MEM_EQ(got, want, len);
    free(got);
    free(want);

    /* The file exists now: creating again without TRUNC must fail. */
    CHECK(qcowkit_create(p1, &co, 0) < 0);
    /* ... and with TRUNC succeed, giving the same bytes. */
    test_create_opts(&co, 1000, 0, NULL);
    CHECK_OK(qcowkit_create(p1, &co, QCOWKIT_IO_TRUNC));
    got = test_read_file(p1, &len);
    want = expected_image(1000, NULL, 12, 9, &elen);
    CHECK_EQ(len, elen);
    CHECK_MEM_EQ(got, want, len);
    free(got);
    free(want);

    test_create_opts(&co, 1 << 20, 0, "base.img");
    CHECK_OK(qcowkit_create(p2, &co, 0));
    got = test_read_file(p2, &len);
    want = expected_image(1 << 20, "base.img", 9, 12, &elen);
    CHECK_EQ(len, elen);
    CHECK_MEM_EQ(got, want, len);
    free(got);
    free(want);

    /* The created file opens and reads as zeros. */
    img = test_open_file(p1, QCOWKIT_OPEN_RDONLY);
    info = test_info(img);
    CHECK_EQ(info.format, QCOWKIT_FORMAT_QCOW);
    CHECK_EQ_U64(info.virtual_size, 1024);
    CHECK_EQ(info.cluster_size, 4096);
    CHECK_EQ(info.cluster_bits, 12);
    CHECK_EQ(info.l2_bits, 9);
    CHECK_EQ(info.crypt_method, QCOWKIT_CRYPT_NONE);
    CHECK_EQ(info.file_size, 560);
    CHECK_EQ(info.backing_file[0], 0);
    CHECK(info.read_only);
    CHECK_OK(qcowkit_pread(img, buf, 1024, 0));
    CHECK_ZERO(buf, 1024);
    /* Reads past the virtual size fail. */
    CHECK(qcowkit_pread(img, buf, 2, 1023) < 0);
    /* Writes to a read-only image fail with -EROFS. */
    CHECK_ERR(qcowkit_pwrite(img, buf, 1, 0), -EROFS);
    CHECK_OK(qcowkit_close(img));

    /* Raw create: a file of the virtual size reading as zeros. */
    qcowkit_create_opts_init(&co);
    co.format = QCOWKIT_FORMAT_RAW;
    co.size = 65536;
    CHECK_OK(qcowkit_create(p3, &co, 0));
    img = test_open_file(p3, QCOWKIT_OPEN_RDWR);
    info = test_info(img);
    CHECK_EQ(info.format, QCOWKIT_FORMAT_RAW);
    CHECK_EQ_U64(info.virtual_size, 65536);
    CHECK_EQ(info.cluster_size, 0);
    CHECK_OK(qcowkit_pread(img, buf, sizeof(buf), 65536 - sizeof(buf)));
    CHECK_ZERO(buf, sizeof(buf));
    test_pattern(buf, sizeof(buf), 0, 7);
    CHECK_OK(qcowkit_pwrite(img, buf, sizeof(buf), 100));
    CHECK_OK(qcowkit_close(img));
    got = test_read_file(p3, &len);
    CHECK_EQ(len, 65536);
    CHECK_MEM_EQ(got + 100, buf, sizeof(buf));
    free(got);

    test_rm_rf(dir);
    free(p1);
    free(p2);
    free(p3);
    free(dir);
}

static void test_cluster_sizes(void)
{
    for (unsigned bits = 9; bits <= 16; bits++) {
        uint32_t cs = 1u << bits;
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        struct qcowkit_info info;
        uint64_t size = 5ull << 20;
        uint8_t *buf = test_xmalloc(3 * cs);
        uint8_t *back = test_xmalloc(3 * cs);
        const uint8_t *data;
        size_t len;
        struct test_header h;

        for (int with_backing = 0; with_backing < 2; with_backing++) {
            struct qcowkit_create_opts co;

            io = test_mem_io(NULL, 0);
            test_create_opts(&co, size, cs, with_backing ? "none.img" : NULL);
            CHECK_OK(qcowkit_create_io(io, "cs.qcow", &co));
            CHECK_OK(qcowkit_io_memory_data(io, &data, &len));
            CHECK(len >= 48);
            test_header_decode(data, &h);
            CHECK_EQ(h.magic, TEST_QCOW_MAGIC);
            CHECK_EQ(h.version, 1);
            CHECK_EQ(h.cluster_bits, bits);
            CHECK(h.l2_bits >= 6 && h.l2_bits <= 13);
            CHECK_EQ_U64(h.size, size);
            CHECK_EQ(len, test_qemu_file_size(size, h.cluster_bits, h.l2_bits,
                                              with_backing ? 8 : 0));
            CHECK_ZERO(data + h.l1_table_offset, len - h.l1_table_offset);
            if (with_backing) {
                CHECK_EQ(h.backing_file_offset, 48);
                CHECK_EQ(h.backing_file_size, 8);
                CHECK(memcmp(data + 48, "none.img", 8) == 0);
                qcowkit_io_close(io);
                continue;
            }
            img = test_open_io(io, "cs.qcow", QCOWKIT_OPEN_RDWR);
            info = test_info(img);
            CHECK_EQ(info.cluster_size, cs);
            CHECK_EQ(info.cluster_bits, bits);
            test_pattern(buf, 3 * cs, 0, bits);
            CHECK_OK(qcowkit_pwrite(img, buf, 3 * cs, cs - 1));
            CHECK_OK(qcowkit_close(img));
            img = test_open_io(io, "cs.qcow", QCOWKIT_OPEN_RDONLY);
            CHECK_OK(qcowkit_pread(img, back, 3 * cs, cs - 1));
            CHECK_MEM_EQ(back, buf, 3 * cs);
            CHECK_OK(qcowkit_close(img));
            qcowkit_io_close(io);
        }
        free(buf);
        free(back);
    }

    /* Invalid cluster sizes. */
    static const uint32_t bad[] = {1,    256,  511,    513,
                                   1000, 3072, 131072, 1u << 31};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct qcowkit_create_opts co;
        struct qcowkit_io *io = test_mem_io(NULL, 0);
        int r;

        test_create_opts(&co, 1 << 20, bad[i], NULL);
        r = qcowkit_create_io(io, "bad.qcow", &co);
        if (r != -EINVAL)
            TEST_FAIL("cluster_size %" PRIu32 ": create returned %d, "
                      "expected -EINVAL",
                      bad[i], r);
        qcowkit_io_close(io);
    }
}

static void test_bad_create(void)
{
    struct qcowkit_create_opts co;
    struct qcowkit_io *io = test_mem_io(NULL, 0);

    char name[1100];

    /* A backing name too long to be read back (QEMU stops at 1023). */
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    test_create_opts(&co, 1 << 20, 0, name);
    CHECK_ERR(qcowkit_create_io(io, "long.qcow", &co), -EINVAL);
    qcowkit_io_close(io);
}

/* An image is never made its own backing file, under any of its names. */
static void test_self_backing(void)
{
    char *dir = test_mkdtemp();
    char *path = test_path(dir, "x.qcow");
    char *hard = test_path(dir, "hard.qcow");
    const char *names[] = {"x.qcow", "./x.qcow", "hard.qcow", path};
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    struct qcowkit_io *io;
    uint8_t *before, *after;
    size_t len, len2;

    test_create_file(path, 1 << 20, 0, NULL);
    CHECK(link(path, hard) == 0);
    before = test_read_file(path, &len);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        test_create_opts(&co, 1 << 20, 0, names[i]);
        CHECK_ERR(qcowkit_create(path, &co, QCOWKIT_IO_TRUNC), -EINVAL);
        CHECK(strstr(qcowkit_errmsg(), names[i]) != NULL);
        CHECK_OK(qcowkit_io_open_file(path, QCOWKIT_IO_RDWR, &io));
        CHECK_ERR(qcowkit_create_io(io, path, &co), -EINVAL);
        qcowkit_io_close(io);
        img = test_open_file(path, QCOWKIT_OPEN_RDWR);
        CHECK_ERR(qcowkit_set_backing(img, names[i]), -EINVAL);
        CHECK_OK(qcowkit_close(img));
        after = test_read_file(path, &len2);
        CHECK_EQ(len, len2);
        CHECK_MEM_EQ(before, after, len);
        free(after);
    }
    /* A new file naming itself is not created. */
    free(path);
    path = test_path(dir, "new.qcow");
    test_create_opts(&co, 1 << 20, 0, "./new.qcow");
    CHECK_ERR(qcowkit_create(path, &co, 0), -EINVAL);
    CHECK(access(path, F_OK) != 0);
    free(before);
    free(hard);
    free(path);
    free(dir);
}

/*
 * Over a backend that already holds bytes (qcowkit_create_io does not
 * empty it), the L1 table is written as zeros up to the old end and
 * grown past it: every byte is still what qemu-img makes.
 */
static void test_create_over_garbage(void)
{
    const uint64_t size = UINT64_C(64) << 30; /* a 256 KiB L1 table */
    const size_t old_len = 200 * 1024;
    uint8_t *garbage = test_xmalloc(old_len), *got, *want;
    struct qcowkit_create_opts co;
    struct qcowkit_io *io;
    size_t len, elen;

    memset(garbage, 0xab, old_len);
    io = test_mem_io(garbage, old_len);
    test_create_opts(&co, size, 0, NULL);
    CHECK_OK(qcowkit_create_io(io, "old.qcow", &co));
    got = test_mem_bytes(io, &len);
    want = expected_image(size, NULL, 12, 9, &elen);
    CHECK_EQ(len, elen);
    CHECK_MEM_EQ(got, want, len);
    free(got);
    free(want);
    free(garbage);
    qcowkit_io_close(io);
}

int main(void)
{
    test_init(120);
    CHECK(strcmp(qcowkit_version(), QCOWKIT_VERSION_STRING) == 0);
    test_qemu_layouts();
    test_many_sizes();
    test_file_create();
    test_cluster_sizes();
    test_bad_create();
    test_self_backing();
    test_create_over_garbage();
    printf("test-create: ok\n");
    return 0;
}
