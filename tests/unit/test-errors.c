/*
 * Every failing public call sets the thread's message: a stale message
 * from an earlier, unrelated failure would blame the wrong thing.  Each
 * case first sets a sentinel message, then checks the failure replaced
 * it with one naming what went wrong.
 */
#include "test-backends.h"
#include "test.h"

#define SENTINEL "sentinel-unrelated-failure"

static void set_sentinel(void)
{
    struct qcowkit_image *img;

    CHECK(qcowkit_open("/nonexistent/" SENTINEL, NULL, &img) < 0);
    CHECK_MSG_HAS(SENTINEL);
}

/* expr must fail with err and leave a fresh message containing needle. */
#define EXPECT_FAIL(expr, err, needle)                                         \
    do {                                                                       \
        set_sentinel();                                                        \
        CHECK_ERR((expr), (err));                                              \
        if (strstr(qcowkit_errmsg(), SENTINEL))                                \
            TEST_FAIL("%s left the old message", #expr);                       \
        CHECK_MSG_HAS(needle);                                                 \
    } while (0)

/*
 * A test wrapper's call fails with -EINVAL and says why in its own
 * message; each case below names a different call, so a message left
 * from the case before would not match.
 */
#define EXPECT_WRAPPER_FAIL(expr, needle)                                      \
    do {                                                                       \
        CHECK_ERR((expr), -EINVAL);                                            \
        if (!strstr(test_backends_errmsg(), (needle)))                         \
            TEST_FAIL("%s: message \"%s\" lacks \"%s\"", #expr,                \
                      test_backends_errmsg(), (needle));                       \
    } while (0)

static int fail_get_size(void *opaque, uint64_t *size)
{
    (void)opaque, (void)size;
    return -EIO;
}

static int ok_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    (void)opaque, (void)offset;
    memset(buf, 0, count);
    return 0;
}

static int ok_pwrite(void *opaque, const void *buf, size_t count,
                     uint64_t offset)
{
    (void)opaque, (void)buf, (void)count, (void)offset;
    return 0;
}

static int ok_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int ok_truncate(void *opaque, uint64_t size)
{
    (void)opaque, (void)size;
    return 0;
}

/* A backend without discard whose get_size fails. */
static struct qcowkit_io *sizeless_io(void)
{
    struct qcowkit_io_ops ops;
    struct qcowkit_io *io;

    qcowkit_io_ops_init(&ops);
    ops.pread = ok_pread;
    ops.pwrite = ok_pwrite;
    ops.flush = ok_flush;
    ops.get_size = fail_get_size;
    ops.truncate = ok_truncate;
    CHECK_OK(qcowkit_io_new(&ops, NULL, "sizeless", &io));
    return io;
}

static void test_backends(void)
{
    struct qcowkit_io_ops ops;
    struct qcowkit_io *io, *mem = test_mem_io(NULL, 0), *fault;
    const uint8_t *data;
    uint8_t buf[512] = {0};
    uint64_t size;
    size_t len;
    int hole;

    qcowkit_io_ops_init(&ops);
    EXPECT_FAIL(qcowkit_io_new(&ops, NULL, "empty-ops", &io), -EINVAL, "pread");
    ops.struct_size = 1;
    EXPECT_FAIL(qcowkit_io_new(&ops, NULL, "tiny", &io), -EINVAL,
                "struct_size");
    EXPECT_FAIL(
        qcowkit_io_open_file("/nonexistent/dir/f.qcow", QCOWKIT_IO_RDONLY, &io),
        -ENOENT, "f.qcow");
    /* The test wrappers (tests/backends) keep their own message. */
    EXPECT_WRAPPER_FAIL(fault_backend_new(NULL, &io),
                        "fault_backend_new: no inner backend");
    EXPECT_WRAPPER_FAIL(crash_backend_new(NULL, &io),
                        "crash_backend_new: no inner backend");
    CHECK_OK(fault_backend_new(mem, &fault));
    EXPECT_FAIL(qcowkit_io_memory_data(fault, &data, &len), -EINVAL, "memory");
    EXPECT_WRAPPER_FAIL(fault_backend_arm(mem, FAULT_OP_READ, 1, 0, -EIO),
                        "fault_backend_arm");
    EXPECT_WRAPPER_FAIL(crash_backend_arm(mem, 1), "crash_backend_arm");
    EXPECT_WRAPPER_FAIL(crash_backend_image(mem, CRASH_KEEP_ALL, 0, &io),
                        "crash_backend_image");

    /* Direct calls name the backend and the operation. */
    CHECK_OK(fault_backend_arm(fault, FAULT_OP_READ, 1, 0, -EIO));
    EXPECT_FAIL(qcowkit_io_pread(fault, buf, sizeof buf, 0), -EIO, "read");
    CHECK_OK(fault_backend_arm(fault, FAULT_OP_WRITE, 1, 0, -ENOSPC));
    EXPECT_FAIL(qcowkit_io_pwrite(fault, buf, sizeof buf, 0), -ENOSPC, "write");
    CHECK_OK(fault_backend_arm(fault, FAULT_OP_FLUSH, 1, 0, -EIO));
    EXPECT_FAIL(qcowkit_io_flush(fault), -EIO, "flush");
    CHECK_OK(fault_backend_arm(fault, FAULT_OP_TRUNCATE, 1, 0, -EIO));
    EXPECT_FAIL(qcowkit_io_truncate(fault, 0), -EIO, "truncate");
    CHECK_OK(fault_backend_arm(fault, FAULT_OP_WRITE, 1, 0, -EIO));
    EXPECT_FAIL(qcowkit_io_discard(fault, 0, 512), -EIO, "discard");
    qcowkit_io_close(fault);

    io = sizeless_io();
    EXPECT_FAIL(qcowkit_io_get_size(io, &size), -EIO, "sizeless");
    EXPECT_FAIL(qcowkit_io_discard(io, 0, 512), -EOPNOTSUPP, "discard");
    EXPECT_FAIL(qcowkit_io_extent(io, 0, &size, &hole), -EOPNOTSUPP,
                "sizeless");
    EXPECT_FAIL(qcowkit_io_lock(io, 3, NULL), -EINVAL, "lock mode 3");
    qcowkit_io_close(io);
    qcowkit_io_close(mem);
}

static void test_open_create(void)
{
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;
    struct qcowkit_io *mem = test_mem_io(NULL, 0), *io;
    char *dir = test_mkdtemp();
    char *path = test_path(dir, "exists.qcow");

    EXPECT_FAIL(qcowkit_open_io(NULL, "x", NULL, &img), -EINVAL, "backend");
    qcowkit_open_opts_init(&oo);
    oo.format = QCOWKIT_FORMAT_QCOW;
    EXPECT_FAIL(qcowkit_open_io(mem, "empty.qcow", &oo, &img), -EINVAL,
                "empty.qcow");
    oo.struct_size = 0;
    EXPECT_FAIL(qcowkit_open_io(mem, "x", &oo, &img), -EINVAL, "struct_size");
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_FORCE_SHARE;
    EXPECT_FAIL(qcowkit_open(path, &oo, &img), -EINVAL, "force-share");

    test_create_opts(&co, 1 << 20, 0, NULL);
    CHECK_OK(qcowkit_create(path, &co, 0));
    EXPECT_FAIL(qcowkit_create(path, &co, 0), -EEXIST, "exists.qcow");
    EXPECT_FAIL(qcowkit_create_io(NULL, "x", &co), -EINVAL, "backend");
    EXPECT_FAIL(qcowkit_create_io(mem, "x", NULL), -EINVAL, "options");
    co.cluster_size = 3000;
    EXPECT_FAIL(qcowkit_create_io(mem, "bad.qcow", &co), -EINVAL, "bad.qcow");

    /* A create whose sync fails. */
    CHECK_OK(fault_backend_new(mem, &io));
    co.cluster_size = 0;
    CHECK_OK(fault_backend_arm(io, FAULT_OP_FLUSH, 1, 1, -EIO));
    EXPECT_FAIL(qcowkit_create_io(io, "sync.qcow", &co), -EIO, "flush");
    qcowkit_io_close(io);
    qcowkit_io_close(mem);
    free(path);
    free(dir);
}

static void test_image_calls(void)
{
    struct qcowkit_io *mem, *fio;
    struct qcowkit_image *img = test_mem_image(1 << 20, 4096, NULL, "img.qcow",
                                               &mem),
                         *ro;
    struct qcowkit_deflater *d;
    struct qcowkit_check_report r;
    struct qcowkit_extent e;
    struct qcowkit_info info;
    uint8_t buf[4096] = {0};
    char name[2000];
    size_t out_len;

    EXPECT_FAIL(qcowkit_pread(img, buf, 512, 1 << 20), -EINVAL, "img.qcow");
    EXPECT_FAIL(qcowkit_pwrite(img, buf, 512, (1 << 20) - 1), -EINVAL,
                "img.qcow");
    EXPECT_FAIL(qcowkit_pwrite_zeroes(img, 512, 1 << 20), -EINVAL, "img.qcow");
    EXPECT_FAIL(qcowkit_pwrite_compressed(img, buf, 512, 0), -EINVAL,
                "whole clusters");
    EXPECT_FAIL(qcowkit_pwrite_deflated(img, buf, 0, 0), -EINVAL,
                "compressed cluster");
    EXPECT_FAIL(qcowkit_block_status(img, 1 << 20, 1, &e), -EINVAL,
                "block status");
    CHECK_OK(qcowkit_deflater_new(img, &d));
    EXPECT_FAIL(qcowkit_deflate_cluster(d, buf, 0, buf, &out_len), -EINVAL,
                "deflate");
    qcowkit_deflater_free(d);
    qcowkit_info_init(&info);
    info.struct_size = 4;
    EXPECT_FAIL(qcowkit_get_info(img, &info), -EINVAL, "qcowkit_info");
    EXPECT_FAIL(qcowkit_check(img, 0, NULL, NULL, NULL), -EINVAL,
                "qcowkit_check");
    qcowkit_check_report_init(&r);
    r.struct_size = 8;
    EXPECT_FAIL(qcowkit_check(img, 0, NULL, NULL, &r), -EINVAL, "struct_size");
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    EXPECT_FAIL(qcowkit_set_backing(img, name), -EINVAL, "exceeds");
    CHECK_OK(qcowkit_close(img));

    /* Read-only handles. */
    ro = test_open_io(mem, "ro.qcow", QCOWKIT_OPEN_RDONLY);
    EXPECT_FAIL(qcowkit_pwrite(ro, buf, 512, 0), -EROFS, "ro.qcow");
    EXPECT_FAIL(qcowkit_make_empty(ro), -EROFS, "ro.qcow");
    EXPECT_FAIL(qcowkit_resize(ro, 1 << 21), -EROFS, "ro.qcow");
    EXPECT_FAIL(qcowkit_set_backing(ro, "base"), -EROFS, "ro.qcow");
    qcowkit_check_report_init(&r);
    EXPECT_FAIL(qcowkit_check(ro, QCOWKIT_CHECK_REPAIR_ALL, NULL, NULL, &r),
                -EROFS, "ro.qcow");
    CHECK_OK(qcowkit_close(ro));

    /* Raw images refuse what only qcow has. */
    ro = test_open_io_ex(mem, "raw.img", QCOWKIT_OPEN_RDONLY,
                         QCOWKIT_FORMAT_RAW, 0);
    EXPECT_FAIL(qcowkit_deflater_new(ro, &d), -ENOTSUP, "raw.img");
    EXPECT_FAIL(qcowkit_pwrite_deflated(ro, buf, 100, 0), -ENOTSUP, "raw.img");
    qcowkit_check_report_init(&r);
    EXPECT_FAIL(qcowkit_check(ro, 0, NULL, NULL, &r), -ENOTSUP, "raw.img");
    CHECK_OK(qcowkit_close(ro));

    /* Failing storage under a handle: flush, close, info. */
    CHECK_OK(fault_backend_new(mem, &fio));
    img = test_open_io(fio, "fault.qcow", QCOWKIT_OPEN_RDWR);
    CHECK_OK(qcowkit_pwrite(img, buf, sizeof buf, 0));
    CHECK_OK(fault_backend_arm(fio, FAULT_OP_FLUSH, 1, 1, -EIO));
    EXPECT_FAIL(qcowkit_flush(img), -EIO, "flush");
    EXPECT_FAIL(qcowkit_close(img), -EIO, "flush");
    qcowkit_io_close(fio);

    fio = sizeless_io();
    EXPECT_FAIL(qcowkit_open_io(fio, "sizeless.qcow", NULL, &img), -EIO,
                "sizeless");
    qcowkit_io_close(fio);
    qcowkit_io_close(mem);
}

int main(void)
{
    test_init(60);
    test_backends();
    test_open_create();
    test_image_calls();
    printf("test-errors: ok\n");
    return 0;
}
