/* qcowkit_check: findings, repairs, and that repairs never lose data. */
#include "test.h"

struct counts {
    int lines;
};

static void count_line(void *opaque, const char *message)
{
    (void)message;
    ((struct counts *)opaque)->lines++;
}

static struct qcowkit_check_report run_check(struct qcowkit_image *img,
                                             unsigned flags)
{
    struct qcowkit_check_report r;
    struct counts n = {0};

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK_OK(qcowkit_check(img, flags, count_line, &n, &r));
    return r;
}

/* Reopen the bytes of io so the check sees exactly what is on "disk". */
static struct qcowkit_image *reopen(struct qcowkit_image *img,
                                    struct qcowkit_io *io)
{
    CHECK_OK(qcowkit_close(img));
    return test_open_io(io, "check.qcow", QCOWKIT_OPEN_RDWR);
}

static void write_pattern(struct qcowkit_image *img, uint8_t byte,
                          uint64_t offset, size_t len)
{
    uint8_t *buf = test_xmalloc(len);
    memset(buf, byte, len);
    CHECK_OK(qcowkit_pwrite(img, buf, len, offset));
    free(buf);
}

static void expect_pattern(struct qcowkit_image *img, uint8_t byte,
                           uint64_t offset, size_t len)
{
    uint8_t *buf = test_xmalloc(len);
    CHECK_OK(qcowkit_pread(img, buf, len, offset));
    for (size_t i = 0; i < len; i++)
        CHECK_EQ(buf[i], byte);
    free(buf);
}

static void test_clean_image(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(8 << 20, 4096, NULL, "check.qcow", &io);
    uint8_t cluster[4096];
    struct qcowkit_check_report r;

    write_pattern(img, 0x11, 100, 50000);
    memset(cluster, 0x22, sizeof cluster);
    CHECK_OK(qcowkit_pwrite_compressed(img, cluster, sizeof cluster, 4 << 20));
    img = reopen(img, io);
    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 0);
    CHECK_EQ(r.leaks, 0);
    CHECK_EQ(r.compressed_clusters, 1);
    CHECK_EQ(r.allocated_clusters, 14);
    CHECK_EQ(r.total_clusters, 2048);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

/* A compressed write over an allocated cluster leaves the old one leaked. */
static void test_leak_repair(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(8 << 20, 4096, NULL, "check.qcow", &io);
    uint8_t cluster[4096];
    struct qcowkit_check_report r;

    write_pattern(img, 0x33, 0, 3 * 4096);
    memset(cluster, 0x44, sizeof cluster);
    CHECK_OK(qcowkit_pwrite_compressed(img, cluster, sizeof cluster, 4096));
    img = reopen(img, io);
    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 0);
    CHECK_EQ(r.leaks, 1);
    r = run_check(img, QCOWKIT_CHECK_REPAIR_LEAKS);
    CHECK_EQ(r.leaks_fixed, 1);
    r = run_check(img, 0);
    CHECK_EQ(r.leaks, 0);
    expect_pattern(img, 0x33, 0, 4096);
    expect_pattern(img, 0x44, 4096, 4096);
    expect_pattern(img, 0x33, 8192, 4096);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

/*
 * An L2 entry of the first table pointing at the second table: the entry
 * is to blame, and no repair may lose the second table's data.
 */
static void test_entry_into_table(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(4 << 20, 4096, NULL, "check.qcow", &io);
    uint64_t l1_pos, entry_pos;
    uint8_t *bytes, second_table[8];
    struct qcowkit_check_report r;
    size_t len;

    write_pattern(img, 0x55, 0, 4096);
    write_pattern(img, 0x66, 2 << 20, 4096);
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, &len);
    entry_pos = test_l2_entry_pos(bytes, len, 4096, NULL);
    test_l2_entry_pos(bytes, len, 2 << 20, &l1_pos);
    CHECK(entry_pos && l1_pos);
    memcpy(second_table, bytes + l1_pos, 8);
    CHECK_OK(qcowkit_io_pwrite(io, second_table, 8, entry_pos));
    free(bytes);
    img = test_open_io(io, "check.qcow", QCOWKIT_OPEN_RDWR);

    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 1);
    r = run_check(img, QCOWKIT_CHECK_REPAIR_LEAKS);
    CHECK_EQ(r.leaks_fixed, 0);
    expect_pattern(img, 0x66, 2 << 20, 4096);
    r = run_check(img, QCOWKIT_CHECK_REPAIR_ALL);
    CHECK_EQ(r.corruptions_fixed, 1);
    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 0);
    expect_pattern(img, 0x55, 0, 4096);
    expect_pattern(img, 0x00, 4096, 4096);
    expect_pattern(img, 0x66, 2 << 20, 4096);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

/* Entries outside the file or misaligned are cleared by REPAIR_ALL. */
static void test_bad_entries(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(4 << 20, 4096, NULL, "check.qcow", &io);
    uint64_t pos_far, pos_odd;
    uint8_t *bytes, raw[8];
    struct qcowkit_check_report r;
    size_t len;

    write_pattern(img, 0x77, 0, 3 * 4096);
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, &len);
    pos_far = test_l2_entry_pos(bytes, len, 4096, NULL);
    pos_odd = test_l2_entry_pos(bytes, len, 8192, NULL);
    free(bytes);
    test_put_be64(raw, UINT64_C(1) << 40);
    CHECK_OK(qcowkit_io_pwrite(io, raw, 8, pos_far));
    test_put_be64(raw, 4096 + 100);
    CHECK_OK(qcowkit_io_pwrite(io, raw, 8, pos_odd));
    img = test_open_io(io, "check.qcow", QCOWKIT_OPEN_RDWR);

    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 2);
    r = run_check(img, QCOWKIT_CHECK_REPAIR_ALL);
    CHECK_EQ(r.corruptions_fixed, 2);
    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 0);
    expect_pattern(img, 0x77, 0, 4096);
    expect_pattern(img, 0x00, 4096, 2 * 4096);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

static void test_read_only_refuses_repair(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(1 << 20, 4096, NULL, "check.qcow", &io);
    struct qcowkit_check_report r;

    CHECK_OK(qcowkit_close(img));
    img = test_open_io(io, "check.qcow", QCOWKIT_OPEN_RDONLY);
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK_ERR(qcowkit_check(img, QCOWKIT_CHECK_REPAIR_LEAKS, NULL, NULL, &r),
              -EROFS);
    qcowkit_close(img);
    qcowkit_io_close(io);
}

/*
 * A file past one 32 GiB window of the check's maps (a sparse gap in the
 * middle): tables and clusters on both sides, a duplicate reference across
 * the windows, and the gap is no leak (it reads as zeros).
 */
static void test_two_windows(void)
{
    char *dir = test_mkdtemp(), *path = test_path(dir, "big.qcow");
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;
    struct qcowkit_check_report r;
    struct qcowkit_io *io;
    uint64_t far = UINT64_C(40) << 30, size;
    uint8_t *bytes, raw[8];
    uint64_t near_pos, far_pos;

    test_create_opts(&co, UINT64_C(8) << 30, 4096, NULL);
    CHECK_OK(qcowkit_create(path, &co, 0));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    CHECK_OK(qcowkit_open(path, &oo, &img));
    write_pattern(img, 0x12, 0, 4096);
    CHECK_OK(qcowkit_close(img));
    CHECK_EQ(truncate(path, (off_t)far), 0);
    CHECK_OK(qcowkit_open(path, &oo, &img));
    write_pattern(img, 0x34, UINT64_C(4) << 30, 4096);
    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 0);
    CHECK_EQ(r.leaks, 0);
    CHECK_EQ(r.allocated_clusters, 2);
    CHECK(r.image_end_offset > far);
    CHECK_OK(qcowkit_close(img));

    /* The far entry now points at the near cluster: one cluster, twice. */
    CHECK_OK(qcowkit_io_open_file(path, QCOWKIT_IO_RDWR, &io));
    CHECK_OK(qcowkit_io_get_size(io, &size));
    bytes = test_xmalloc(65536);
    CHECK_OK(qcowkit_io_pread(io, bytes, 65536, 0));
    near_pos = test_l2_entry_pos(bytes, 65536, 0, NULL);
    CHECK(near_pos != 0);
    CHECK_OK(qcowkit_io_pread(io, raw, 8, near_pos));
    free(bytes);
    /* The far L2 table is the first thing written past the gap. */
    CHECK(size > far);
    far_pos = far + ((UINT64_C(4) << 30) >> 12 & 511) * 8;
    CHECK_OK(qcowkit_io_pwrite(io, raw, 8, far_pos));
    qcowkit_io_close(io);
    CHECK_OK(qcowkit_open(path, &oo, &img));
    r = run_check(img, 0);
    CHECK_EQ(r.corruptions, 1);
    qcowkit_close(img);
    free(path);
    free(dir);
}

int main(void)
{
    test_init(60);
    test_clean_image();
    test_leak_repair();
    test_entry_into_table();
    test_bad_entries();
    test_read_only_refuses_repair();
    test_two_windows();
    return 0;
}
