/*
 * A program built against the 0.1 header (qcowkit-0.1.h, a frozen copy)
 * and an even older backend table without discard, run against the
 * current shared library: struct_size must keep old callers working.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit-0.1.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: FAIL: %s\n    errmsg: \"%s\"\n", __FILE__, \
                    __LINE__, #cond, qcowkit_errmsg());                        \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* The backend table before discard was added: it ends after close. */
struct old_io_ops {
    size_t struct_size;
    int (*pread)(void *opaque, void *buf, size_t count, uint64_t offset);
    int (*pwrite)(void *opaque, const void *buf, size_t count, uint64_t offset);
    int (*flush)(void *opaque);
    int (*get_size)(void *opaque, uint64_t *size);
    int (*truncate)(void *opaque, uint64_t size);
    void (*close)(void *opaque);
};

struct buffer {
    uint8_t bytes[1 << 20];
    uint64_t len;
};

static int buf_pread(void *opaque, void *dst, size_t count, uint64_t offset)
{
    struct buffer *b = opaque;
    memset(dst, 0, count);
    if (offset < b->len)
        memcpy(dst, b->bytes + offset,
               b->len - offset < count ? b->len - offset : count);
    return 0;
}

static int buf_pwrite(void *opaque, const void *src, size_t count,
                      uint64_t offset)
{
    struct buffer *b = opaque;
    if (offset + count > sizeof b->bytes)
        return -ENOSPC;
    memcpy(b->bytes + offset, src, count);
    if (offset + count > b->len)
        b->len = offset + count;
    return 0;
}

static int buf_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int buf_get_size(void *opaque, uint64_t *size)
{
    *size = ((struct buffer *)opaque)->len;
    return 0;
}

static int buf_truncate(void *opaque, uint64_t size)
{
    struct buffer *b = opaque;
    if (size > sizeof b->bytes)
        return -ENOSPC;
    if (size < b->len)
        memset(b->bytes + size, 0, b->len - size);
    b->len = size;
    return 0;
}

static int closed;

static void buf_close(void *opaque)
{
    (void)opaque;
    closed++;
}

static int bogus_calls;

static int bogus_discard(void *opaque, uint64_t offset, uint64_t length)
{
    (void)opaque, (void)offset, (void)length;
    bogus_calls++;
    return 0;
}

/* The old table, followed in memory by what a new library must not read. */
static struct {
    struct old_io_ops ops;
    int (*after)(void *opaque, uint64_t offset, uint64_t length);
} old_table = {
    {sizeof(struct old_io_ops), buf_pread, buf_pwrite, buf_flush, buf_get_size,
     buf_truncate, buf_close},
    bogus_discard,
};

static struct buffer disk;

static struct qcowkit_io *old_backend(void)
{
    struct qcowkit_io *io;
    int err = qcowkit_io_new((const struct qcowkit_io_ops *)&old_table.ops,
                             &disk, "old.qcow", &io);
    CHECK(err == 0);
    return io;
}

static void test_old_backend(void)
{
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;
    struct qcowkit_io *io = old_backend();
    uint8_t data[4096], back[4096];

    qcowkit_create_opts_init(&co);
    co.size = 1 << 20;
    CHECK(qcowkit_create_io(io, "old.qcow", &co) == 0);
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    CHECK(qcowkit_open_io(io, "old.qcow", &oo, &img) == 0);
    memset(data, 0xa5, sizeof data);
    CHECK(qcowkit_pwrite(img, data, sizeof data, 8192) == 0);
    CHECK(qcowkit_flush(img) == 0);
    CHECK(qcowkit_pread(img, back, sizeof back, 8192) == 0);
    CHECK(memcmp(data, back, sizeof data) == 0);
    CHECK(qcowkit_close(img) == 0);
    /* No discard in the old table: absent, whatever lies after it. */
    CHECK(qcowkit_io_discard(io, 0, 512) == -EOPNOTSUPP);
    CHECK(bogus_calls == 0);
    qcowkit_io_close(io);
    CHECK(closed == 1);
}

/* A table too short for the required functions is refused, clearly. */
static void test_short_backend(void)
{
    struct old_io_ops ops = old_table.ops;
    struct qcowkit_io *io;

    ops.struct_size = sizeof(size_t) + 2 * sizeof(void *);
    CHECK(qcowkit_io_new((const struct qcowkit_io_ops *)&ops, &disk, "short",
                         &io) == -EINVAL);
    CHECK(io == NULL);
    CHECK(strstr(qcowkit_errmsg(), "struct_size"));
}

/* The image keeps io, which the caller closes after it. */
static struct qcowkit_image *open_old(unsigned flags, struct qcowkit_io **io)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;

    /* Options as 0.1 knew them. */
    qcowkit_open_opts_init(&oo);
    CHECK(oo.struct_size == sizeof oo);
    oo.flags = flags;
    *io = old_backend();
    CHECK(qcowkit_open_io(*io, "old.qcow", &oo, &img) == 0);
    return img;
}

static void test_old_structs(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img = open_old(QCOWKIT_OPEN_RDWR, &io);
    struct qcowkit_check_report r;
    struct qcowkit_info info;

    memset(&info, 0x5a, sizeof info);
    info.struct_size = sizeof info;
    CHECK(qcowkit_get_info(img, &info) == 0);
    CHECK(info.struct_size == sizeof info);
    CHECK(info.format == QCOWKIT_FORMAT_QCOW);
    CHECK(info.virtual_size == 1 << 20);
    CHECK(info.format_probed == 1);
    CHECK(info.backing_file[0] == 0);

    memset(&r, 0x5a, sizeof r);
    r.struct_size = sizeof r;
    CHECK(qcowkit_check(img, QCOWKIT_CHECK_REPAIR_ALL, NULL, NULL, &r) == 0);
    CHECK(r.struct_size == sizeof r);
    CHECK(r.corruptions == 0 && r.leaks == 0);
    CHECK(r.allocated_clusters == 1);
    CHECK(qcowkit_close(img) == 0);
    qcowkit_io_close(io);
}

/* An output struct only as long as its required fields: nothing after. */
static void test_short_outputs(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img = open_old(QCOWKIT_OPEN_RDONLY, &io);
    struct qcowkit_check_report r;
    struct qcowkit_info info;
    size_t info_min = offsetof(struct qcowkit_info, virtual_size) + 8;
    size_t r_min = offsetof(struct qcowkit_check_report, leaks) + 8;

    memset(&info, 0x5a, sizeof info);
    info.struct_size = info_min;
    CHECK(qcowkit_get_info(img, &info) == 0);
    CHECK(info.struct_size == info_min);
    CHECK(info.virtual_size == 1 << 20);
    CHECK(info.cluster_size == 0x5a5a5a5a); /* never written */

    memset(&r, 0x5a, sizeof r);
    r.struct_size = r_min;
    CHECK(qcowkit_check(img, 0, NULL, NULL, &r) == 0);
    CHECK(r.struct_size == r_min && r.leaks == 0);
    CHECK(r.corruptions_fixed == 0x5a5a5a5a5a5a5a5aull);

    /* Shorter than the required fields: refused, nothing written. */
    info.struct_size = offsetof(struct qcowkit_info, virtual_size);
    CHECK(qcowkit_get_info(img, &info) == -EINVAL);
    CHECK(strstr(qcowkit_errmsg(), "struct_size"));
    r.struct_size = sizeof(size_t);
    CHECK(qcowkit_check(img, 0, NULL, NULL, &r) == -EINVAL);
    CHECK(strstr(qcowkit_errmsg(), "qcowkit_check_report"));
    CHECK(qcowkit_close(img) == 0);
    qcowkit_io_close(io);
}

/* Input structs of an older shape: what they lack is absent. */
static void test_short_inputs(void)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_create_opts co;
    struct qcowkit_image *img;
    struct qcowkit_io *io;
    struct qcowkit_info info;

    CHECK(qcowkit_io_new_memory(NULL, 0, &io) == 0);
    memset(&co, 0x5a, sizeof co); /* garbage past struct_size */
    co.struct_size = offsetof(struct qcowkit_create_opts, size) + 8;
    co.format = QCOWKIT_FORMAT_QCOW;
    co.size = 1 << 20;
    CHECK(qcowkit_create_io(io, "short.qcow", &co) == 0);

    memset(&oo, 0x5a, sizeof oo);
    oo.struct_size = offsetof(struct qcowkit_open_opts, format) + 4;
    oo.flags = QCOWKIT_OPEN_RDONLY;
    oo.format = QCOWKIT_FORMAT_QCOW;
    CHECK(qcowkit_open_io(io, "short.qcow", &oo, &img) == 0);
    memset(&info, 0, sizeof info); /* 0.1 had no qcowkit_info_init */
    info.struct_size = sizeof info;
    CHECK(qcowkit_get_info(img, &info) == 0);
    CHECK(info.cluster_size == 4096 && info.crypt_method == 0);
    CHECK(info.format_probed == 0);
    CHECK(qcowkit_close(img) == 0);

    oo.struct_size = sizeof(size_t);
    CHECK(qcowkit_open_io(io, "short.qcow", &oo, &img) == -EINVAL);
    CHECK(strstr(qcowkit_errmsg(), "qcowkit_open_opts"));
    co.struct_size = 0;
    CHECK(qcowkit_create_io(io, "short.qcow", &co) == -EINVAL);
    CHECK(strstr(qcowkit_errmsg(), "qcowkit_create_opts"));
    qcowkit_io_close(io);
}

/* A newer caller's longer structs: unknown output bytes come back zero. */
static void test_longer_structs(void)
{
    struct {
        struct qcowkit_open_opts o;
        uint64_t future;
    } oo;
    struct {
        struct qcowkit_info i;
        uint64_t future;
    } info;
    struct qcowkit_image *img;
    struct qcowkit_io *io = old_backend();

    memset(&oo, 0, sizeof oo);
    oo.o.struct_size = sizeof oo;
    CHECK(qcowkit_open_io(io, "old.qcow", &oo.o, &img) == 0);
    memset(&info, 0x5a, sizeof info);
    info.i.struct_size = sizeof info;
    CHECK(qcowkit_get_info(img, &info.i) == 0);
    CHECK(info.i.struct_size == sizeof info.i);
    CHECK(info.future == 0);
    CHECK(qcowkit_close(img) == 0);

    /* An option this library does not know is refused, not ignored. */
    oo.future = 1;
    CHECK(qcowkit_open_io(io, "old.qcow", &oo.o, &img) == -ENOTSUP);
    CHECK(strstr(qcowkit_errmsg(), "does not know"));
    qcowkit_io_close(io);
}

int main(void)
{
    test_old_backend();
    test_short_backend();
    test_old_structs();
    test_short_outputs();
    test_short_inputs();
    test_longer_structs();
    printf("test-0.1: ok (library %s)\n", qcowkit_version());
    return 0;
}
