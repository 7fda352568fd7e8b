/*
 * Storage only through the backend: a program's own backend gets image
 * locks and reports holes through its lock and extent functions, the
 * fault and crash wrappers (tests/backends) pass both on through
 * qcowkit_io_lock() and qcowkit_io_extent(), and qcowkit_create() takes the
 * write lock before it truncates.
 */
#include <stdbool.h>

#include "test-backends.h"
#include "test.h"

#define MAX_LOCKS 16

/* A backend of our own over a memory backend, with one hole and a log. */
struct own {
    struct qcowkit_io *mem;
    uint64_t hole_start, hole_end; /* reported as a hole (extent) */
    unsigned modes[MAX_LOCKS];     /* lock calls, in order */
    unsigned locks;
    bool busy;         /* lock calls past NONE fail with -EBUSY */
    bool stuck_extent; /* extent answers 0 bytes */
    uint64_t reads;
};

static int own_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct own *o = opaque;

    o->reads++;
    return qcowkit_io_pread(o->mem, buf, count, offset);
}

static int own_pwrite(void *opaque, const void *buf, size_t count,
                      uint64_t offset)
{
    struct own *o = opaque;
    return qcowkit_io_pwrite(o->mem, buf, count, offset);
}

static int own_flush(void *opaque)
{
    struct own *o = opaque;
    return qcowkit_io_flush(o->mem);
}

static int own_get_size(void *opaque, uint64_t *size)
{
    struct own *o = opaque;
    return qcowkit_io_get_size(o->mem, size);
}

static int own_truncate(void *opaque, uint64_t size)
{
    struct own *o = opaque;
    return qcowkit_io_truncate(o->mem, size);
}

static int own_lock(void *opaque, unsigned mode, const char **why)
{
    struct own *o = opaque;

    CHECK(o->locks < MAX_LOCKS);
    o->modes[o->locks++] = mode;
    if (o->busy && mode != QCOWKIT_IO_LOCK_NONE) {
        *why = "the test holds it";
        return -EBUSY;
    }
    return 0;
}

static int own_extent(void *opaque, uint64_t offset, uint64_t *length,
                      int *hole)
{
    struct own *o = opaque;

    *hole = offset >= o->hole_start && offset < o->hole_end;
    if (o->stuck_extent)
        *length = 0;
    else if (*hole)
        *length = o->hole_end - offset;
    else if (offset < o->hole_start)
        *length = o->hole_start - offset;
    else
        *length = UINT64_MAX - offset;
    return 0;
}

/* Our backend over o->mem; ops_size cuts the table short (an old caller). */
static struct qcowkit_io *own_io(struct own *o, size_t ops_size)
{
    struct qcowkit_io_ops ops;
    struct qcowkit_io *io = NULL;

    qcowkit_io_ops_init(&ops);
    ops.struct_size = ops_size;
    ops.pread = own_pread;
    ops.pwrite = own_pwrite;
    ops.flush = own_flush;
    ops.get_size = own_get_size;
    ops.truncate = own_truncate;
    ops.lock = own_lock;
    ops.extent = own_extent;
    CHECK_OK(qcowkit_io_new(&ops, o, "own.img", &io));
    return io;
}

static void own_init(struct own *o, uint64_t hole_start, uint64_t hole_end)
{
    memset(o, 0, sizeof *o);
    o->mem = test_mem_io(NULL, 0);
    o->hole_start = hole_start;
    o->hole_end = hole_end;
}

/* The lock calls so far were exactly these modes; the log is emptied. */
static void expect_locks(struct own *o, unsigned n, const unsigned *modes)
{
    CHECK_EQ(o->locks, n);
    for (unsigned i = 0; i < n; i++)
        CHECK_EQ(o->modes[i], modes[i]);
    o->locks = 0;
}

static struct qcowkit_image *open_raw(struct qcowkit_io *io, unsigned flags)
{
    return test_open_io_ex(io, "own.img", flags, QCOWKIT_FORMAT_RAW, 0);
}

static void expect_status(struct qcowkit_image *img, uint64_t offset,
                          uint64_t count, unsigned flags, uint64_t length)
{
    struct qcowkit_extent e;

    CHECK_OK(qcowkit_block_status(img, offset, count, &e));
    CHECK_EQ(e.flags, flags);
    CHECK_EQ_U64(e.length, length);
}

#define DATA (QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_HOST_OFFSET)

/* A raw image over io whose storage has a hole at [16K, 32K) of 64K. */
static void check_raw_holes(struct qcowkit_io *io, bool holes)
{
    struct qcowkit_image *img = open_raw(io, QCOWKIT_OPEN_RDONLY);

    expect_status(img, 0, 65536, DATA, holes ? 16384 : 65536);
    expect_status(img, 16384, 49152, holes ? DATA | QCOWKIT_EXTENT_ZERO : DATA,
                  holes ? 16384 : 49152);
    expect_status(img, 20480, 4096, holes ? DATA | QCOWKIT_EXTENT_ZERO : DATA,
                  4096);
    expect_status(img, 32768, 32768, DATA, 32768);
    CHECK_OK(qcowkit_close(img));
}

static void test_raw_holes(void)
{
    struct qcowkit_io *io, *fio, *cio;
    struct own o;

    own_init(&o, 16384, 32768);
    CHECK_OK(qcowkit_io_truncate(o.mem, 65536));
    io = own_io(&o, sizeof(struct qcowkit_io_ops));
    check_raw_holes(io, true);
    /* The wrappers ask the backend they wrap. */
    CHECK_OK(fault_backend_new(io, &fio));
    check_raw_holes(fio, true);
    CHECK_OK(crash_backend_new(io, &cio));
    check_raw_holes(cio, true);
    qcowkit_io_close(cio);
    qcowkit_io_close(fio);
    qcowkit_io_close(io);
    /* An older caller's table ends before extent: never called. */
    io = own_io(&o, offsetof(struct qcowkit_io_ops, lock));
    check_raw_holes(io, false);
    qcowkit_io_close(io);
    /* The memory backend tells no holes: all data. */
    check_raw_holes(o.mem, false);
    qcowkit_io_close(o.mem);
}

/*
 * Two clusters nothing points at, both holding bytes that are not zero:
 * the one our backend calls a hole is no leak, the other one is.
 */
static uint64_t leaks_with(size_t ops_size)
{
    struct qcowkit_create_opts co;
    struct qcowkit_check_report r;
    struct qcowkit_image *img;
    struct qcowkit_io *io;
    uint8_t junk[8192];
    struct own o;

    own_init(&o, 4096, 8192);
    test_create_opts(&co, 1 << 20, 4096, NULL);
    CHECK_OK(qcowkit_create_io(o.mem, "own.img", &co));
    memset(junk, 0xab, sizeof junk);
    CHECK_OK(qcowkit_io_pwrite(o.mem, junk, sizeof junk, 4096));
    io = own_io(&o, ops_size);
    img = test_open_io(io, "own.img", QCOWKIT_OPEN_RDONLY);
    qcowkit_check_report_init(&r);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    qcowkit_io_close(o.mem);
    return r.leaks;
}

static void test_check_holes(void)
{
    CHECK_EQ(leaks_with(sizeof(struct qcowkit_io_ops)), 1);
    CHECK_EQ(leaks_with(offsetof(struct qcowkit_io_ops, lock)), 2);
}

static void test_lock_modes(void)
{
    static const unsigned read_none[] = {QCOWKIT_IO_LOCK_READ,
                                         QCOWKIT_IO_LOCK_NONE};
    static const unsigned write_none[] = {QCOWKIT_IO_LOCK_WRITE,
                                          QCOWKIT_IO_LOCK_NONE};
    static const unsigned read_write[] = {QCOWKIT_IO_LOCK_READ,
                                          QCOWKIT_IO_LOCK_WRITE};
    struct qcowkit_image *img, *w;
    struct qcowkit_io *io;
    struct own o;

    own_init(&o, 0, 0);
    io = own_io(&o, sizeof(struct qcowkit_io_ops));
    CHECK_OK(qcowkit_io_truncate(o.mem, 65536));
    CHECK_OK(qcowkit_close(open_raw(io, QCOWKIT_OPEN_RDONLY)));
    expect_locks(&o, 2, read_none);
    CHECK_OK(qcowkit_close(open_raw(io, QCOWKIT_OPEN_RDWR)));
    expect_locks(&o, 2, write_none);
    CHECK_OK(qcowkit_close(
        open_raw(io, QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_FORCE_SHARE)));
    expect_locks(&o, 0, NULL);

    /* Two images share the lock: the strongest mode either needs. */
    img = open_raw(io, QCOWKIT_OPEN_RDONLY);
    w = open_raw(io, QCOWKIT_OPEN_RDWR);
    expect_locks(&o, 2, read_write);
    CHECK_OK(qcowkit_close(w));
    CHECK_EQ(o.locks, 1);
    CHECK_EQ(o.modes[0], QCOWKIT_IO_LOCK_READ);
    o.locks = 0;
    CHECK_OK(qcowkit_close(img));
    CHECK_EQ(o.locks, 1);
    CHECK_EQ(o.modes[0], QCOWKIT_IO_LOCK_NONE);
    o.locks = 0;

    /* Creating holds the write lock while it writes. */
    CHECK_OK(qcowkit_io_truncate(o.mem, 0));
    {
        struct qcowkit_create_opts co;
        test_create_opts(&co, 1 << 20, 4096, NULL);
        CHECK_OK(qcowkit_create_io(io, "own.img", &co));
    }
    expect_locks(&o, 2, write_none);

    /* A conflict: refused before a byte is read, with the backend's why. */
    o.busy = true;
    o.reads = 0;
    {
        struct qcowkit_open_opts oo;
        qcowkit_open_opts_init(&oo);
        CHECK_ERR(qcowkit_open_io(io, "own.img", &oo, &img), -EBUSY);
        CHECK_MSG_HAS("own.img: image is in use: the test holds it");
    }
    CHECK_EQ(o.reads, 0);
    expect_locks(&o, 1, read_none);
    qcowkit_io_close(io);
    qcowkit_io_close(o.mem);
}

static void expect_extent(struct qcowkit_io *io, uint64_t offset, int hole,
                          uint64_t length)
{
    uint64_t got_length = 0;
    int got_hole = -1;

    CHECK_OK(qcowkit_io_extent(io, offset, &got_length, &got_hole));
    CHECK_EQ(got_hole, hole);
    CHECK_EQ_U64(got_length, length);
}

/* What a wrapper calls to pass lock and extent on. */
static void test_direct_lock_extent(void)
{
    static const unsigned read_none[] = {QCOWKIT_IO_LOCK_READ,
                                         QCOWKIT_IO_LOCK_NONE};
    const char *why = NULL;
    uint64_t length;
    struct qcowkit_io *io;
    struct own o;
    int hole;

    own_init(&o, 16384, 32768);
    io = own_io(&o, sizeof(struct qcowkit_io_ops));
    expect_extent(io, 0, 0, 16384);
    expect_extent(io, 16384, 1, 16384);
    expect_extent(io, 20000, 1, 32768 - 20000);
    expect_extent(io, 32768, 0, UINT64_MAX - 32768);
    o.stuck_extent = true;
    CHECK_ERR(qcowkit_io_extent(io, 0, &length, &hole), -EIO);
    CHECK_MSG_HAS("own.img: extent at offset 0");
    CHECK_ERR(qcowkit_io_extent(o.mem, 0, &length, &hole), -EOPNOTSUPP);

    CHECK_OK(qcowkit_io_lock(io, QCOWKIT_IO_LOCK_READ, &why));
    CHECK_OK(qcowkit_io_lock(io, QCOWKIT_IO_LOCK_NONE, NULL));
    expect_locks(&o, 2, read_none);
    o.busy = true;
    CHECK_ERR(qcowkit_io_lock(io, QCOWKIT_IO_LOCK_WRITE, &why), -EBUSY);
    CHECK(why && strcmp(why, "the test holds it") == 0);
    CHECK_MSG_HAS("own.img: image is in use: the test holds it");
    CHECK_ERR(qcowkit_io_lock(io, QCOWKIT_IO_LOCK_WRITE, NULL), -EBUSY);
    CHECK_ERR(qcowkit_io_lock(io, QCOWKIT_IO_LOCK_WRITE + 1, &why), -EINVAL);
    CHECK_EQ(o.locks, 2); /* a bad mode never reaches the backend */
    CHECK_OK(qcowkit_io_lock(o.mem, QCOWKIT_IO_LOCK_WRITE, &why));
    qcowkit_io_close(io);
    qcowkit_io_close(o.mem);
}

static void test_wrapper_locks(void)
{
    static const unsigned write_none[] = {QCOWKIT_IO_LOCK_WRITE,
                                          QCOWKIT_IO_LOCK_NONE};
    struct qcowkit_io *io, *fio, *cio;
    struct own o;

    own_init(&o, 0, 0);
    CHECK_OK(qcowkit_io_truncate(o.mem, 65536));
    io = own_io(&o, sizeof(struct qcowkit_io_ops));
    CHECK_OK(fault_backend_new(io, &fio));
    CHECK_OK(qcowkit_close(open_raw(fio, QCOWKIT_OPEN_RDWR)));
    expect_locks(&o, 2, write_none);
    CHECK_OK(crash_backend_new(io, &cio));
    CHECK_OK(qcowkit_close(open_raw(cio, QCOWKIT_OPEN_RDWR)));
    expect_locks(&o, 2, write_none);
    qcowkit_io_close(cio);
    qcowkit_io_close(fio);
    qcowkit_io_close(io);
    qcowkit_io_close(o.mem);
}

/* qcowkit_create over an image another handle holds: -EBUSY, untouched. */
static void create_refused(const char *path, unsigned open_flags)
{
    struct qcowkit_create_opts co;
    struct qcowkit_image *holder = test_open_file(path, open_flags);
    uint8_t *before, *after;
    size_t before_len, after_len;

    before = test_read_file(path, &before_len);
    test_create_opts(&co, 4 << 20, 512, NULL);
    CHECK_ERR(qcowkit_create(path, &co, QCOWKIT_IO_TRUNC), -EBUSY);
    CHECK_MSG_HAS("image is in use");
    co.format = QCOWKIT_FORMAT_RAW;
    CHECK_ERR(qcowkit_create(path, &co, QCOWKIT_IO_TRUNC), -EBUSY);
    after = test_read_file(path, &after_len);
    CHECK_EQ(after_len, before_len);
    CHECK_MEM_EQ(after, before, before_len);
    CHECK_OK(qcowkit_close(holder));
    free(before);
    free(after);
}

static void test_create_locked(void)
{
    char *dir = test_mkdtemp(), *path = test_path(dir, "held.qcow");
    struct qcowkit_image *img;
    uint8_t buf[4096];

    test_create_file(path, 1 << 20, 4096, NULL);
    img = test_open_file(path, QCOWKIT_OPEN_RDWR);
    memset(buf, 0x5c, sizeof buf);
    CHECK_OK(qcowkit_pwrite(img, buf, sizeof buf, 0));
    CHECK_OK(qcowkit_close(img));
    create_refused(path, QCOWKIT_OPEN_RDONLY);
    create_refused(path, QCOWKIT_OPEN_RDWR);
    /* Nobody holds it any more: created afresh. */
    test_create_file(path, 1 << 20, 4096, NULL);
    img = test_open_file(path, QCOWKIT_OPEN_RDONLY);
    CHECK_OK(qcowkit_pread(img, buf, sizeof buf, 0));
    CHECK_ZERO(buf, sizeof buf);
    CHECK_OK(qcowkit_close(img));
    free(path);
    free(dir);
}

/* An image over a file backend the caller keeps: locked until closed. */
static void test_open_io_file_lock(void)
{
    char *dir = test_mkdtemp(), *path = test_path(dir, "io.qcow");
    struct qcowkit_image *img, *other;
    struct qcowkit_open_opts oo;
    struct qcowkit_io *io;

    test_create_file(path, 1 << 20, 4096, NULL);
    CHECK_OK(qcowkit_io_open_file(path, QCOWKIT_IO_RDWR, &io));
    img = test_open_io(io, path, QCOWKIT_OPEN_RDWR);
    qcowkit_open_opts_init(&oo);
    CHECK_ERR(qcowkit_open(path, &oo, &other), -EBUSY);
    CHECK_MSG_HAS("another process writes it");
    CHECK_OK(qcowkit_close(img));
    other = test_open_file(path, QCOWKIT_OPEN_RDWR);
    CHECK_OK(qcowkit_close(other));
    qcowkit_io_close(io);
    free(path);
    free(dir);
}

int main(void)
{
    test_init(60);
    test_raw_holes();
    test_check_holes();
    test_lock_modes();
    test_direct_lock_extent();
    test_wrapper_locks();
    test_create_locked();
    test_open_io_file_lock();
    printf("test-backend: ok\n");
    return 0;
}
