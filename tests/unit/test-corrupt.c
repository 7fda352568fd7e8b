/*
 * test-corrupt: crafted corrupt images must be refused at open or at
 * read with the right errno and a message naming the file and the
 * offending field or value; never a crash, a hang or a huge allocation.
 */
#include <zlib.h>

#include "test.h"

#define NAME "corrupt.qcow"

static const char *g_case = "";

static void on_fail(void)
{
    fprintf(stderr, "    case: %s\n", g_case);
}

static int open_bytes(const uint8_t *bytes, size_t len, enum qcowkit_format f,
                      unsigned flags, struct qcowkit_io **io,
                      struct qcowkit_image **img)
{
    struct qcowkit_open_opts oo;
    int r;

    *io = test_mem_io(bytes, len);
    *img = NULL;
    qcowkit_open_opts_init(&oo);
    oo.format = f;
    oo.flags = flags | QCOWKIT_OPEN_NO_BACKING;
    r = qcowkit_open_io(*io, NAME, &oo, img);
    if (r < 0)
        CHECK(*img == NULL);
    else
        CHECK(*img != NULL);
    return r;
}

/* The message mentions one of the given words (case-insensitive). */
static void msg_has_any(const char *a, const char *b, const char *c)
{
    const char *m = qcowkit_errmsg();

    if (!m || !((a && strcasestr(m, a)) || (b && strcasestr(m, b)) ||
                (c && strcasestr(m, c))))
        TEST_FAIL("error message does not mention any of \"%s\" \"%s\" "
                  "\"%s\"",
                  a ? a : "", b ? b : "", c ? c : "");
}

/* Opening must fail with err; the message names the file and words. */
static unsigned corrupt_images; /* how many were tried */

static void expect_open_fail(const char *what, const uint8_t *bytes, size_t len,
                             int err, const char *w1, const char *w2)
{
    corrupt_images++;
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    int r;

    g_case = what;
    r = open_bytes(bytes, len, QCOWKIT_FORMAT_QCOW, 0, &io, &img);
    if (r != err)
        TEST_FAIL("open returned %d (%s), expected %d (%s)", r,
                  r < 0 ? strerror(-r) : "success", err, strerror(-err));
    CHECK_MSG_HAS(NAME);
    if (w1)
        CHECK_MSG_HAS(w1);
    if (w2)
        CHECK_MSG_HAS(w2);
    /* Read-write and probed opens fail the same way. */
    qcowkit_io_close(io);
    r = open_bytes(bytes, len, QCOWKIT_FORMAT_QCOW, QCOWKIT_OPEN_RDWR, &io,
                   &img);
    CHECK_EQ(r, err);
    qcowkit_io_close(io);
    if (len >= 4 && memcmp(bytes, "QFI\xfb", 4) == 0) {
        r = open_bytes(bytes, len, QCOWKIT_FORMAT_AUTO, 0, &io, &img);
        CHECK_EQ(r, err);
        qcowkit_io_close(io);
    }
}

static uint8_t *header_image(struct test_header *h, size_t *len)
{
    return test_craft_image(h, NULL, 0, len);
}

static void test_header_fields(void)
{
    struct test_header h;
    uint8_t *b;
    size_t len;

    /* A valid starting point opens. */
    test_header_init(&h, 1 << 20, 12, 9);
    b = header_image(&h, &len);
    {
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        g_case = "valid crafted header";
        CHECK_OK(open_bytes(b, len, QCOWKIT_FORMAT_QCOW, 0, &io, &img));
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(io);
    }
    free(b);

    test_header_init(&h, 1 << 20, 12, 9);
    h.magic = 0x514649fc;
    b = header_image(&h, &len);
    expect_open_fail("bad magic", b, len, -EINVAL, "magic", NULL);
    /* Probed, it is a raw image. */
    {
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        CHECK_OK(open_bytes(b, len, QCOWKIT_FORMAT_AUTO, 0, &io, &img));
        CHECK_EQ(test_info(img).format, QCOWKIT_FORMAT_RAW);
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(io);
    }
    free(b);

    for (uint32_t v = 2; v <= 3; v++) {
        char want[32];
        test_header_init(&h, 1 << 20, 12, 9);
        h.version = v;
        b = header_image(&h, &len);
        snprintf(want, sizeof(want), "version %u", v);
        expect_open_fail(v == 2 ? "version 2" : "version 3", b, len, -ENOTSUP,
                         "qcow2", NULL);
        msg_has_any(want, "version", NULL);
        free(b);
    }
    {
        static const uint32_t vs[] = {0, 4, 0xffffffffu};
        for (size_t i = 0; i < 3; i++) {
            test_header_init(&h, 1 << 20, 12, 9);
            h.version = vs[i];
            b = header_image(&h, &len);
            expect_open_fail("other versions", b, len, -ENOTSUP, "version",
                             NULL);
            free(b);
        }
    }

    for (uint64_t s = 0; s <= 1; s++) {
        test_header_init(&h, s, 12, 9);
        b = header_image(&h, &len);
        expect_open_fail(s ? "size 1" : "size 0", b, len, -EINVAL, "size",
                         NULL);
        free(b);
    }

    {
        static const unsigned bad_cb[] = {0, 8, 17, 63, 255};
        for (size_t i = 0; i < sizeof(bad_cb) / sizeof(bad_cb[0]); i++) {
            char want[32];
            test_header_init(&h, 1 << 20, bad_cb[i], 9);
            b = header_image(&h, &len);
            snprintf(want, sizeof(want), "cluster_bits %u", bad_cb[i]);
            expect_open_fail(want, b, len, -EINVAL, want, NULL);
            if (bad_cb[i] == 17)
                CHECK_MSG_HAS("9..16");
            free(b);
        }
    }

    {
        static const unsigned bad_l2[] = {0, 5, 14, 255};
        for (size_t i = 0; i < sizeof(bad_l2) / sizeof(bad_l2[0]); i++) {
            char want[32];
            test_header_init(&h, 1 << 20, 12, bad_l2[i]);
            b = header_image(&h, &len);
            snprintf(want, sizeof(want), "l2_bits %u", bad_l2[i]);
            expect_open_fail(want, b, len, -EINVAL, want, NULL);
            free(b);
        }
    }

    /* Sizes whose L1 table cannot exist: overflow, or far too large. */
    {
        static const uint64_t huge[] = {UINT64_MAX, UINT64_MAX - 511,
                                        UINT64_C(1) << 63, UINT64_C(1) << 62,
                                        UINT64_C(1) << 50};
        for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
            struct qcowkit_io *io;
            struct qcowkit_image *img;
            uint8_t hb[TEST_HEADER_SIZE + 512];
            int r;
            g_case = "huge size";
            test_header_init(&h, huge[i], 9, 6);
            memset(hb, 0, sizeof(hb));
            test_header_encode(&h, hb);
            r = open_bytes(hb, sizeof(hb), QCOWKIT_FORMAT_QCOW, 0, &io, &img);
            if (r != -EINVAL && r != -EFBIG)
                TEST_FAIL("size %" PRIu64 ": open returned %d, expected "
                          "-EINVAL",
                          huge[i], r);
            msg_has_any("size", "L1", "large");
            qcowkit_io_close(io);
        }
    }

    /* A backing name of 1024 bytes is too long (1023 is the limit). */
    {
        uint8_t *bb = test_xcalloc(48 + 1024 + 512);
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        test_header_init(&h, 1 << 20, 12, 9);
        h.backing_file_offset = 48;
        h.backing_file_size = 1024;
        h.l1_table_offset = 48 + 1024;
        test_header_encode(&h, bb);
        memset(bb + 48, 'a', 1024);
        expect_open_fail("backing_file_size 1024", bb, 48 + 1024 + 512, -EINVAL,
                         "backing", "1024");
        /* 1023 is fine. */
        h.backing_file_size = 1023;
        test_header_encode(&h, bb);
        g_case = "backing_file_size 1023";
        CHECK_OK(
            open_bytes(bb, 48 + 1024 + 512, QCOWKIT_FORMAT_QCOW, 0, &io, &img));
        CHECK_EQ(strlen(test_info(img).backing_file), 1023);
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(io);
        /* Huge. */
        h.backing_file_size = 0xffffffffu;
        test_header_encode(&h, bb);
        expect_open_fail("backing_file_size 0xffffffff", bb, 48 + 1024 + 512,
                         -EINVAL, "backing", NULL);
        free(bb);
    }

    /* The backing name lies outside the file. */
    {
        static const uint64_t offs[] = {4096, 1 << 20, UINT64_MAX - 3};
        for (size_t i = 0; i < 3; i++) {
            test_header_init(&h, 1 << 20, 12, 9);
            b = header_image(&h, &len);
            h.backing_file_offset = offs[i];
            h.backing_file_size = 8;
            test_header_encode(&h, b);
            expect_open_fail("backing name outside the file", b, len, -EINVAL,
                             "backing", NULL);
            free(b);
        }
        /* Partly outside: starts inside, ends past EOF. */
        test_header_init(&h, 1 << 20, 12, 9);
        b = header_image(&h, &len);
        h.backing_file_offset = len - 4;
        h.backing_file_size = 100;
        test_header_encode(&h, b);
        expect_open_fail("backing name partly outside the file", b, len,
                         -EINVAL, "backing", NULL);
        free(b);
    }

    /* The L1 table lies outside the file, wholly or in part. */
    {
        test_header_init(&h, 1 << 20, 12, 9);
        b = header_image(&h, &len);
        static const uint64_t offs[] = {1 << 20, UINT64_MAX - 7, 0};
        uint64_t partial = len - 4;
        for (size_t i = 0; i < 3; i++) {
            h.l1_table_offset = offs[i] ? offs[i] : partial;
            test_header_encode(&h, b);
            expect_open_fail("L1 table outside the file", b, len, -EINVAL, "L1",
                             NULL);
        }
        /* A larger table than the file holds. */
        test_header_init(&h, 1ull << 40, 9, 6); /* 2^25 entries, 256 MiB */
        test_header_encode(&h, b);
        expect_open_fail("L1 table larger than the file", b, len, -EINVAL, "L1",
                         NULL);
        free(b);
    }

    /* crypt_method 2 is unknown; 1 (AES) is not supported. */
    {
        test_header_init(&h, 1 << 20, 12, 9);
        h.crypt_method = 2;
        b = header_image(&h, &len);
        expect_open_fail("crypt_method 2", b, len, -EINVAL, "crypt", NULL);
        msg_has_any("crypt_method 2", " 2", NULL);
        h.crypt_method = 1;
        test_header_encode(&h, b);
        /*
         * AES: either refused at open (-ENOTSUP), or the image opens (for
         * its info) and data access fails naming the encryption.
         */
        {
            struct qcowkit_io *io;
            struct qcowkit_image *img;
            uint8_t buf[16];
            int r;
            g_case = "crypt_method 1";
            r = open_bytes(b, len, QCOWKIT_FORMAT_QCOW, 0, &io, &img);
            if (r < 0) {
                CHECK_EQ(r, -ENOTSUP);
                msg_has_any("crypt", "AES", NULL);
            } else {
                CHECK_EQ(test_info(img).crypt_method, QCOWKIT_CRYPT_AES);
                r = qcowkit_pread(img, buf, sizeof(buf), 0);
                CHECK(r < 0);
                msg_has_any("crypt", "AES", "key");
                CHECK_OK(qcowkit_close(img));
            }
            qcowkit_io_close(io);
        }
        free(b);
    }
}

/* A valid image with data: cluster 0 normal, cluster 2 compressed. */
static uint8_t *good_image(uint32_t cs, size_t *len)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(1 << 20, cs, NULL, NAME, &io);
    uint8_t *buf = test_xmalloc(cs);
    uint8_t *bytes;

    test_pattern(buf, cs, 0, 1);
    CHECK_OK(qcowkit_pwrite(img, buf, cs, 0));
    test_compressible(buf, cs, 2);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, cs, 2 * cs));
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, len);
    qcowkit_io_close(io);
    free(buf);
    return bytes;
}

/*
 * Either open fails with err, or reading [off, off + n) does; in both
 * cases the message names one of the words.  A partial write there must
 * fail too (it needs the old contents).
 */
static void expect_io_fail(const char *what, const uint8_t *bytes, size_t len,
                           uint64_t off, size_t n, int err, const char *w1,
                           const char *w2, const char *w3)
{
    corrupt_images++;
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    uint8_t *buf = test_xmalloc(n);
    int r;

    g_case = what;
    r = open_bytes(bytes, len, QCOWKIT_FORMAT_QCOW, QCOWKIT_OPEN_RDWR, &io,
                   &img);
    if (r < 0) {
        if (r != err && r != -EINVAL)
            TEST_FAIL("open returned %d (%s), expected %d (%s)", r,
                      strerror(-r), err, strerror(-err));
        msg_has_any(w1, w2, w3);
        qcowkit_io_close(io);
        free(buf);
        return;
    }
    r = qcowkit_pread(img, buf, n, off);
    if (r != err)
        TEST_FAIL("pread(%zu at %" PRIu64 ") returned %d (%s), expected %d "
                  "(%s)",
                  n, off, r, r < 0 ? strerror(-r) : "success", err,
                  strerror(-err));
    CHECK_MSG_HAS(NAME);
    msg_has_any(w1, w2, w3);
    /* The same again (no state was cached by the failure). */
    CHECK_EQ(qcowkit_pread(img, buf, n, off), err);
    /* A one-byte write into the cluster needs its old contents. */
    buf[0] = 1;
    r = qcowkit_pwrite(img, buf, 1, off + 1);
    if (r >= 0)
        TEST_FAIL("a partial write over a corrupt cluster succeeded");
    qcowkit_close(img);
    qcowkit_io_close(io);
    free(buf);
}

static void test_tables(uint32_t cs)
{
    unsigned cb = 0;
    size_t len;
    uint8_t *good = good_image(cs, &len);
    uint8_t *b = test_xmalloc(len + 3 * cs + 64);
    uint64_t l1pos = 0;
    uint64_t l2pos0 = test_l2_entry_pos(good, len, 0, &l1pos);
    uint64_t l2pos2 = test_l2_entry_pos(good, len, 2 * (uint64_t)cs, NULL);
    uint64_t l1e, e0, e2;

    while ((1u << cb) < cs)
        cb++;
    CHECK(l2pos0 != 0 && l2pos2 != 0);
    l1e = test_get_be64(good + l1pos);
    e0 = test_get_be64(good + l2pos0);
    e2 = test_get_be64(good + l2pos2);
    CHECK(e0 != 0 && !(e0 & TEST_OFLAG_COMPRESSED));
    CHECK(e2 & TEST_OFLAG_COMPRESSED);

    /* The untouched image reads fine. */
    {
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        uint8_t *buf = test_xmalloc(cs), *want = test_xmalloc(cs);
        g_case = "good image";
        CHECK_OK(open_bytes(good, len, QCOWKIT_FORMAT_QCOW, 0, &io, &img));
        CHECK_OK(qcowkit_pread(img, buf, cs, 0));
        test_pattern(want, cs, 0, 1);
        CHECK_MEM_EQ(buf, want, cs);
        CHECK_OK(qcowkit_pread(img, buf, cs, 2 * cs));
        test_compressible(want, cs, 2);
        CHECK_MEM_EQ(buf, want, cs);
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(io);
        free(buf);
        free(want);
    }

#define RESET() memcpy(b, good, len)

    /* L1 entry outside the file. */
    RESET();
    test_put_be64(b + l1pos, ((uint64_t)len + 64 * cs) / cs * cs);
    expect_io_fail("L1 entry past EOF", b, len, 0, cs, -EIO, "L1", "L2", NULL);
    RESET();
    test_put_be64(b + l1pos, UINT64_C(1) << 62);
    expect_io_fail("L1 entry far past EOF", b, len, 0, cs, -EIO, "L1", "L2",
                   NULL);
    /* L1 entry misaligned. */
    RESET();
    test_put_be64(b + l1pos, l1e + 8);
    expect_io_fail("L1 entry misaligned", b, len, 0, cs, -EIO, "L1", "L2",
                   "align");
    /* L2 table that starts inside the file but ends past it. */
    {
        struct test_header h;
        uint64_t l2size, p = ((uint64_t)len - 1) / cs * cs;
        test_header_decode(good, &h);
        l2size = UINT64_C(8) << h.l2_bits;
        if (p != 0 && p != l1e && p + l2size > len) {
            RESET();
            test_put_be64(b + l1pos, p);
            expect_io_fail("L2 table past EOF", b, len, 0, cs, -EIO, "L1", "L2",
                           NULL);
        }
    }

    /* L2 entry past EOF. */
    RESET();
    test_put_be64(b + l2pos0, ((uint64_t)len + 16 * cs) / cs * cs);
    expect_io_fail("L2 entry past EOF", b, len, 0, cs, -EIO, "L2", "cluster",
                   NULL);
    /*
     * L2 entry whose cluster is only partly in the file: the tail may
     * read as zeros (like QEMU) or fail with -EIO, but nothing worse.
     */
    RESET();
    test_put_be64(b + l2pos0, ((uint64_t)len - 1) / cs * cs);
    if (((uint64_t)len - 1) / cs * cs + cs > len &&
        ((uint64_t)len - 1) / cs * cs != 0) {
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        uint8_t *buf = test_xmalloc(cs);
        int r;
        g_case = "cluster partly past EOF";
        CHECK_OK(open_bytes(b, len, QCOWKIT_FORMAT_QCOW, 0, &io, &img));
        r = qcowkit_pread(img, buf, cs, 0);
        CHECK(r == 0 || r == -EIO);
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(io);
        free(buf);
    }
    /* Misaligned cluster offset. */
    RESET();
    test_put_be64(b + l2pos0, e0 + 8);
    expect_io_fail("misaligned cluster offset", b, len, 0, cs, -EIO, "L2",
                   "cluster", "align");

    /* Compressed data running past EOF. */
    RESET();
    {
        uint64_t csize = 100;
        uint64_t e =
            TEST_OFLAG_COMPRESSED | (csize << (63 - cb)) | ((uint64_t)len - 10);
        test_put_be64(b + l2pos2, e);
        expect_io_fail("compressed data past EOF", b, len, 2 * cs, cs, -EIO,
                       "compress", "L2", NULL);
    }
    /* A stream that inflates to half a cluster. */
    RESET();
    {
        uint8_t *half = test_xmalloc(cs / 2);
        uint8_t *z = test_xmalloc(cs + 64);
        z_stream zs;
        uint64_t zlen, e;
        test_compressible(half, cs / 2, 3);
        memset(&zs, 0, sizeof(zs));
        CHECK_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                              Z_DEFAULT_STRATEGY),
                 Z_OK);
        zs.next_in = half;
        zs.avail_in = cs / 2;
        zs.next_out = z;
        zs.avail_out = cs + 64;
        CHECK_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
        zlen = zs.total_out;
        deflateEnd(&zs);
        CHECK(zlen < cs);
        memcpy(b + len, z, zlen);
        e = TEST_OFLAG_COMPRESSED | (zlen << (63 - cb)) | (uint64_t)len;
        test_put_be64(b + l2pos2, e);
        expect_io_fail("short compressed stream", b, len + zlen, 2 * cs, cs,
                       -EIO, "compress", "inflate", "decompress");
        /* Garbage instead of a stream. */
        memset(b + len, 0xff, zlen);
        expect_io_fail("garbage compressed stream", b, len + zlen, 2 * cs, cs,
                       -EIO, "compress", "inflate", "decompress");
        /* A compressed size of zero. */
        e = TEST_OFLAG_COMPRESSED | (uint64_t)len;
        test_put_be64(b + l2pos2, e);
        expect_io_fail("zero-length compressed stream", b, len + zlen, 2 * cs,
                       cs, -EIO, "compress", "inflate", "decompress");
        free(half);
        free(z);
    }

    /* A truncated file: the file ends where the data cluster begins. */
    if (e0 + cs <= len)
        expect_io_fail("truncated file (data cluster gone)", good, (size_t)e0,
                       0, cs, -EIO, "L2", "cluster", "EOF");
    /* Cut in the middle of the data cluster: zeros or -EIO, no crash. */
    if (e0 + cs <= len) {
        struct qcowkit_io *io;
        struct qcowkit_image *img;
        uint8_t *buf = test_xmalloc(cs);
        int r;
        g_case = "truncated file (data cluster cut)";
        r = open_bytes(good, (size_t)(e0 + cs / 2), QCOWKIT_FORMAT_QCOW, 0, &io,
                       &img);
        if (r == 0) {
            r = qcowkit_pread(img, buf, cs, 0);
            CHECK(r == 0 || r == -EIO);
            qcowkit_close(img);
        } else {
            CHECK(r == -EINVAL || r == -EIO);
        }
        qcowkit_io_close(io);
        free(buf);
    }
    /* Truncated inside the L1 table: open fails. */
    {
        struct test_header h;
        test_header_decode(good, &h);
        expect_open_fail("truncated inside the L1 table", good,
                         (size_t)h.l1_table_offset + 4, -EINVAL, "L1", NULL);
    }
    free(good);
    free(b);
#undef RESET
}

static void test_tiny_files(void)
{
    static const uint8_t ten[10] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 1, 0, 0};
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    uint8_t hdr[TEST_HEADER_SIZE];
    struct test_header h;
    int r;

    g_case = "empty file";
    r = open_bytes(NULL, 0, QCOWKIT_FORMAT_QCOW, 0, &io, &img);
    CHECK_EQ(r, -EINVAL);
    CHECK_MSG_HAS(NAME);
    qcowkit_io_close(io);
    /* Probed, an empty file is an empty raw image (or refused). */
    r = open_bytes(NULL, 0, QCOWKIT_FORMAT_AUTO, 0, &io, &img);
    if (r == 0) {
        CHECK_EQ(test_info(img).virtual_size, 0);
        CHECK_OK(qcowkit_close(img));
    }
    qcowkit_io_close(io);

    g_case = "10-byte file";
    r = open_bytes(ten, sizeof(ten), QCOWKIT_FORMAT_QCOW, 0, &io, &img);
    CHECK_EQ(r, -EINVAL);
    CHECK_MSG_HAS(NAME);
    msg_has_any("header", "short", "trunc");
    qcowkit_io_close(io);
    r = open_bytes(ten, sizeof(ten), QCOWKIT_FORMAT_AUTO, 0, &io, &img);
    if (r == 0)
        CHECK_OK(qcowkit_close(img));
    else
        CHECK_EQ(r, -EINVAL);
    qcowkit_io_close(io);

    /* A bare header with no L1 table after it. */
    g_case = "header only";
    test_header_init(&h, 1 << 20, 12, 9);
    test_header_encode(&h, hdr);
    r = open_bytes(hdr, sizeof(hdr), QCOWKIT_FORMAT_QCOW, 0, &io, &img);
    CHECK_EQ(r, -EINVAL);
    msg_has_any("L1", NULL, NULL);
    qcowkit_io_close(io);
    /* 47 bytes. */
    g_case = "47 bytes";
    r = open_bytes(hdr, sizeof(hdr) - 1, QCOWKIT_FORMAT_QCOW, 0, &io, &img);
    CHECK_EQ(r, -EINVAL);
    qcowkit_io_close(io);
}

/* Every single-byte header corruption: no crash, only clean errors. */
static void test_header_bytes(void)
{
    size_t len;
    uint8_t *good = good_image(4096, &len);
    uint8_t *b = test_xmalloc(len);
    uint8_t buf[4096];

    g_case = "single-byte header corruptions";
    for (size_t pos = 0; pos < TEST_HEADER_SIZE; pos++) {
        static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
        for (size_t v = 0; v < sizeof(vals); v++) {
            struct qcowkit_io *io;
            struct qcowkit_image *img;
            int r;
            memcpy(b, good, len);
            b[pos] = vals[v];
            r = open_bytes(b, len, QCOWKIT_FORMAT_QCOW, 0, &io, &img);
            if (r < 0) {
                CHECK(r != -ENOMEM);
                CHECK(qcowkit_errmsg()[0] != 0);
            } else {
                struct qcowkit_info info = test_info(img);
                uint64_t n = info.virtual_size < sizeof(buf) ? info.virtual_size
                                                             : sizeof(buf);
                r = qcowkit_pread(img, buf, (size_t)n, 0);
                CHECK(r == 0 || r == -EIO || r == -EINVAL || r == -EACCES);
                if (r < 0)
                    CHECK(qcowkit_errmsg()[0] != 0);
                qcowkit_close(img);
            }
            qcowkit_io_close(io);
        }
    }
    free(good);
    free(b);
}

int main(void)
{
    test_init(120);
    test_fail_hook = on_fail;
    test_header_fields();
    for (uint32_t cs = 512; cs <= 65536; cs *= 2)
        test_tables(cs);
    test_tiny_files();
    test_header_bytes();
    printf("corrupt images tried: %u\n", corrupt_images);
    printf("test-corrupt: ok\n");
    return 0;
}
