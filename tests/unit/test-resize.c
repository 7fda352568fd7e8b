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

static void print_finding(void *opaque, const char *message)
{
    (void)opaque;
    fprintf(stderr, "check: %s\n", message);
}

static void expect_clean(struct qcowkit_image *img)
{
    struct qcowkit_check_report r;

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK_OK(qcowkit_check(img, 0, print_finding, NULL, &r));
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

/* ----------------------------------------------- growing an overlay */

#define BACKING_BYTE 0xbb

struct overlay {
    char *dir;
    char *name;
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    const uint8_t *key; /* NULL: not encrypted */
};

/* A 1 MiB backing file of BACKING_BYTE, raw or qcow, in a fresh folder. */
static char *make_backing(int qcow_backing, uint64_t len)
{
    char *dir = test_mkdtemp();
    uint8_t *bytes = test_xmalloc(len);
    char *path;

    memset(bytes, BACKING_BYTE, len);
    if (qcow_backing) {
        struct qcowkit_image *b;
        path = test_path(dir, "base.qcow");
        test_create_file(path, len, 512, NULL);
        b = test_open_file(path, QCOWKIT_OPEN_RDWR);
        CHECK_OK(qcowkit_pwrite(b, bytes, len, 0));
        CHECK_OK(qcowkit_close(b));
    } else {
        path = test_path(dir, "base.raw");
        test_write_file(path, bytes, len);
    }
    free(path);
    free(bytes);
    return dir;
}

static void overlay_open(struct overlay *o)
{
    struct qcowkit_open_opts oo;

    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.key = o->key;
    oo.key_len = o->key ? 16 : 0;
    CHECK_OK(qcowkit_open_io(o->io, o->name, &oo, &o->img));
}

static void overlay_new(struct overlay *o, int qcow_backing, uint64_t size,
                        uint32_t cluster_size, const uint8_t *key)
{
    struct qcowkit_create_opts co;

    memset(o, 0, sizeof *o);
    o->dir = make_backing(qcow_backing, 1 << 20);
    o->name = test_path(o->dir, "overlay.qcow");
    o->key = key;
    o->io = test_mem_io(NULL, 0);
    test_create_opts(&co, size, cluster_size,
                     qcow_backing ? "base.qcow" : "base.raw");
    co.key = key;
    co.key_len = key ? 16 : 0;
    CHECK_OK(qcowkit_create_io(o->io, o->name, &co));
    overlay_open(o);
}

static void overlay_reopen(struct overlay *o)
{
    CHECK_OK(qcowkit_close(o->img));
    overlay_open(o);
}

static void overlay_free(struct overlay *o)
{
    CHECK_OK(qcowkit_close(o->img));
    qcowkit_io_close(o->io);
    test_rm_rf(o->dir);
    free(o->dir);
    free(o->name);
}

static const uint8_t test_key[16] = "resize-test-key";

/* Grow a half-size overlay: the new range reads zeros, not the backing. */
static void test_grow_overlay(int qcow_backing, uint32_t cs, uint64_t old,
                              uint64_t grown, const uint8_t *key)
{
    struct overlay o;

    overlay_new(&o, qcow_backing, old, cs, key);
    fill(o.img, 0x11, 0, 4096);
    expect(o.img, BACKING_BYTE, 4096, old - 4096);
    CHECK_OK(qcowkit_resize(o.img, grown));
    CHECK_EQ_U64(test_info(o.img).virtual_size, grown);
    expect(o.img, 0x11, 0, 4096);
    expect(o.img, BACKING_BYTE, 4096, old - 4096);
    expect(o.img, 0x00, old, grown - old);
    expect_clean(o.img);
    overlay_reopen(&o);
    expect(o.img, BACKING_BYTE, 4096, old - 4096);
    expect(o.img, 0x00, old, grown - old);
    expect_clean(o.img);
    /* Writes in the grown range still work, and their neighbours stay 0. */
    fill(o.img, 0x77, old + 512, 1024);
    expect(o.img, 0x00, old, 512);
    expect(o.img, 0x77, old + 512, 1024);
    expect(o.img, 0x00, old + 1536, grown - old - 1536);
    expect_clean(o.img);
    overlay_free(&o);
}

/* Write everywhere, shrink, grow: nothing old and no backing comes back. */
static void test_shrink_grow_overlay(int qcow_backing, uint32_t cs,
                                     uint64_t cut, const uint8_t *key)
{
    struct overlay o;

    overlay_new(&o, qcow_backing, 1 << 20, cs, key);
    fill(o.img, 0x22, 0, 1 << 20);
    CHECK_OK(qcowkit_resize(o.img, cut));
    CHECK_OK(qcowkit_resize(o.img, 1 << 20));
    expect(o.img, 0x22, 0, cut);
    expect(o.img, 0x00, cut, (1 << 20) - cut);
    expect_clean(o.img);
    overlay_reopen(&o);
    expect(o.img, 0x22, 0, cut);
    expect(o.img, 0x00, cut, (1 << 20) - cut);
    expect_clean(o.img);
    overlay_free(&o);
}

/* Grow far past the backing file: a few bytes per covered cluster only. */
static void test_grow_cost(void)
{
    struct overlay o;
    uint64_t before, after;

    overlay_new(&o, 0, 512 << 10, 4096, NULL);
    before = test_info(o.img).file_size;
    CHECK_OK(qcowkit_resize(o.img, UINT64_C(64) << 20));
    after = test_info(o.img).file_size;
    expect(o.img, 0x00, 512 << 10, (UINT64_C(64) << 20) - (512 << 10));
    /* The new L1 and one L2 table (cluster-aligned), 128 small streams. */
    if (after - before > 3 * 4096 + 128 * 32)
        TEST_FAIL("growing cost %llu bytes",
                  (unsigned long long)(after - before));
    expect_clean(o.img);
    overlay_free(&o);
}

/* Set the virtual size in the header bytes, keeping every table. */
static void patch_size(struct overlay *o, uint64_t size)
{
    uint8_t raw[8];

    CHECK_OK(qcowkit_close(o->img));
    test_put_be64(raw, size);
    CHECK_OK(qcowkit_io_pwrite(o->io, raw, sizeof raw, 24));
    overlay_open(o);
}

/*
 * The cluster across the old end may hold data past it (written by
 * another tool, or by us before a header-only shrink): it must read as
 * zeros past the old end once grown.  how: 0 normal, 1 compressed.
 */
static void test_grow_straddle(int how, int with_backing)
{
    struct overlay o;
    uint64_t cs = 65536, old = cs + 4096;
    uint8_t *buf = test_xmalloc(cs);

    if (with_backing) {
        overlay_new(&o, 0, 2 * cs, (uint32_t)cs, NULL);
    } else {
        memset(&o, 0, sizeof o);
        o.dir = test_mkdtemp();
        o.name = test_path(o.dir, "overlay.qcow");
        o.img = test_mem_image(2 * cs, (uint32_t)cs, NULL, o.name, &o.io);
    }
    memset(buf, 0x33, cs);
    if (how == 1)
        CHECK_OK(qcowkit_pwrite_compressed(o.img, buf, cs, cs));
    else
        CHECK_OK(qcowkit_pwrite(o.img, buf, cs, cs));
    patch_size(&o, old);
    CHECK_OK(qcowkit_resize(o.img, 2 * cs));
    expect(o.img, with_backing ? BACKING_BYTE : 0, 0, cs);
    expect(o.img, 0x33, cs, old - cs);
    expect(o.img, 0x00, old, 2 * cs - old);
    expect_clean(o.img);
    overlay_reopen(&o);
    expect(o.img, 0x33, cs, old - cs);
    expect(o.img, 0x00, old, 2 * cs - old);
    overlay_free(&o);
    free(buf);
}

static void test_grow_overlays(void)
{
    for (int qb = 0; qb <= 1; qb++) {
        test_grow_overlay(qb, 4096, 512 << 10, 1 << 20, NULL);
        test_grow_overlay(qb, 65536, (512 << 10) + 1536, 1 << 20, NULL);
        test_grow_overlay(qb, 512, (512 << 10) + 512, (2 << 20) + 512, NULL);
        test_grow_overlay(qb, 4096, (512 << 10) + 512, 1 << 20, test_key);
        test_shrink_grow_overlay(qb, 4096, 256 << 10, NULL);
        test_shrink_grow_overlay(qb, 65536, (256 << 10) + 1536, NULL);
        test_shrink_grow_overlay(qb, 4096, (256 << 10) + 512, test_key);
    }
    /* Grown by less than a cluster, inside the cluster across the end. */
    test_grow_overlay(0, 65536, (512 << 10) + 512, (512 << 10) + 4096, NULL);
    test_grow_cost();
    for (int how = 0; how <= 1; how++) {
        test_grow_straddle(how, 0);
        test_grow_straddle(how, 1);
    }
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
    test_grow_overlays();
    printf("test-resize: ok\n");
    return 0;
}
