/* qcowkit_resize and qcowkit_set_backing: the header changes, data stays. */
#include "test.h"

static void fill(struct qcowkit_image *img, uint8_t byte, uint64_t offset,
                 size_t len)
{
    uint8_t *buf = test_xmalloc(len);
    memset(buf, byte, len);
    CHECK_OK(qcowkit_pwrite(img, buf, len, offset));
    free(buf);
}

static void expect(struct qcowkit_image *img, uint8_t byte, uint64_t offset,
                   size_t len)
{
    uint8_t *buf = test_xmalloc(len);
    CHECK_OK(qcowkit_pread(img, buf, len, offset));
    for (size_t i = 0; i < len; i++)
        if (buf[i] != byte)
            TEST_FAIL("byte %llu is 0x%02x, not 0x%02x",
                      (unsigned long long)(offset + i), buf[i], byte);
    free(buf);
}

static void expect_clean(struct qcowkit_image *img)
{
    struct qcowkit_check_report r;

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    CHECK_EQ(r.leaks, 0);
}

static struct qcowkit_image *reopen(struct qcowkit_image *img,
                                    struct qcowkit_io *io)
{
    CHECK_OK(qcowkit_close(img));
    return test_open_io(io, "resize.qcow", QCOWKIT_OPEN_RDWR);
}

static void test_grow(uint32_t cluster_size)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(1 << 20, cluster_size, NULL, "resize.qcow", &io);

    fill(img, 0x11, 0, 1 << 20);
    CHECK_OK(qcowkit_resize(img, UINT64_C(300) << 20));
    CHECK_EQ_U64(test_info(img).virtual_size, UINT64_C(300) << 20);
    expect(img, 0x11, 0, 1 << 20);
    expect(img, 0x00, 1 << 20, 4 << 20);
    fill(img, 0x22, UINT64_C(290) << 20, 70000);
    img = reopen(img, io);
    CHECK_EQ_U64(test_info(img).virtual_size, UINT64_C(300) << 20);
    expect(img, 0x11, 0, 1 << 20);
    expect(img, 0x22, UINT64_C(290) << 20, 70000);
    expect(img, 0x00, (UINT64_C(290) << 20) + 70000, 4096);
    expect_clean(img);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

/* Shrink to a size inside a cluster, then grow: the cut part reads zeros. */
static void test_shrink_then_grow(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(UINT64_C(8) << 20, 4096, NULL, "resize.qcow", &io);
    uint64_t cut = (UINT64_C(3) << 20) + 1536;

    fill(img, 0x33, 0, 8 << 20);
    CHECK_OK(qcowkit_resize(img, cut));
    CHECK_EQ_U64(test_info(img).virtual_size, cut);
    img = reopen(img, io);
    CHECK_EQ_U64(test_info(img).virtual_size, cut);
    expect(img, 0x33, 0, cut);
    CHECK_OK(qcowkit_resize(img, UINT64_C(8) << 20));
    expect(img, 0x33, 0, cut);
    expect(img, 0x00, cut, (8 << 20) - cut);
    img = reopen(img, io);
    expect(img, 0x00, cut, (8 << 20) - cut);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

static void test_refusals(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(1 << 20, 4096, NULL, "resize.qcow", &io);
    char long_name[1100];

    CHECK_ERR(qcowkit_resize(img, 0), -EINVAL);
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK_ERR(qcowkit_set_backing(img, long_name), -EINVAL);
    CHECK_OK(qcowkit_close(img));
    img = test_open_io(io, "resize.qcow", QCOWKIT_OPEN_RDONLY);
    CHECK_ERR(qcowkit_resize(img, 2 << 20), -EROFS);
    CHECK_ERR(qcowkit_set_backing(img, "x"), -EROFS);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

static void test_backing_names(void)
{
    struct qcowkit_io *io = test_mem_io(NULL, 0);
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;
    uint8_t *bytes;
    size_t len;

    test_create_opts(&co, 1 << 20, 0, "base.img");
    CHECK_OK(qcowkit_create_io(io, "resize.qcow", &co));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_BACKING;
    CHECK_OK(qcowkit_open_io(io, "resize.qcow", &oo, &img));
    fill(img, 0x44, 4096, 512);
    /* Shorter: it fits where the old name was. */
    CHECK_OK(qcowkit_set_backing(img, "b.img"));
    CHECK(strcmp(test_info(img).backing_file, "b.img") == 0);
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, &len);
    CHECK_EQ(test_get_be64(bytes + 8), 48);
    CHECK_EQ(test_get_be32(bytes + 16), 5);
    CHECK(memcmp(bytes + 48, "b.img", 5) == 0);
    free(bytes);
    /* Longer: it goes to the end of the file. */
    CHECK_OK(qcowkit_open_io(io, "resize.qcow", &oo, &img));
    CHECK_OK(qcowkit_set_backing(img, "a/much/longer/backing/name.raw"));
    CHECK_OK(qcowkit_close(img));
    CHECK_OK(qcowkit_open_io(io, "resize.qcow", &oo, &img));
    CHECK(strcmp(test_info(img).backing_file,
                 "a/much/longer/backing/name.raw") == 0);
    expect(img, 0x44, 4096, 512);
    expect_clean(img);
    /* None. */
    CHECK_OK(qcowkit_set_backing(img, NULL));
    CHECK_OK(qcowkit_close(img));
    oo.flags = QCOWKIT_OPEN_RDWR;
    CHECK_OK(qcowkit_open_io(io, "resize.qcow", &oo, &img));
    CHECK(test_info(img).backing_file[0] == '\0');
    CHECK(qcowkit_backing(img) == NULL);
    expect(img, 0x44, 4096, 512);
    expect(img, 0x00, 0, 4096);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

int main(void)
{
    test_init(120);
    test_grow(4096);
    test_grow(512);
    test_grow(65536);
    test_shrink_then_grow();
    test_refusals();
    test_backing_names();
    printf("test-resize: ok\n");
    return 0;
}
