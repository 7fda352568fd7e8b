/*
 * test-backing: overlays on raw and qcow backing files, chains, relative
 * names, copy-on-write of partial clusters, missing backing files, loops,
 * short backing files and make_empty.
 */
#include "test.h"

static char *g_dir;

static void read_check(struct qcowkit_image *img, const uint8_t *model,
                       uint64_t off, size_t n, const char *what)
{
    uint8_t *buf = test_xmalloc(n);

    memset(buf, 0xee, n);
    CHECK_OK(qcowkit_pread(img, buf, n, off));
    if (memcmp(buf, model + off, n) != 0) {
        size_t d = 0;
        test_memdiff_(buf, model + off, n, &d);
        TEST_FAIL("%s: guest offset %" PRIu64 " reads 0x%02x, want 0x%02x",
                  what, off + d, buf[d], model[off + d]);
    }
    free(buf);
}

static void write_model(struct qcowkit_image *img, uint8_t *model, uint64_t off,
                        size_t n, uint32_t tag)
{
    uint8_t *buf = test_xmalloc(n);

    test_pattern(buf, n, off, tag);
    CHECK_OK(qcowkit_pwrite(img, buf, n, off));
    memcpy(model + off, buf, n);
    free(buf);
}

/* A raw file of n bytes with a pattern; returns the pattern (malloc'd). */
static uint8_t *make_raw(const char *path, size_t n, uint32_t tag)
{
    uint8_t *data = test_xmalloc(n);

    test_pattern(data, n, 0, tag);
    test_write_file(path, data, n);
    return data;
}

static void test_raw_backing(void)
{
    const size_t size = 1 << 20;
    char *base = test_path(g_dir, "base.raw");
    char *top = test_path(g_dir, "top.qcow");
    uint8_t *model = make_raw(base, size, 1);
    struct qcowkit_image *img;
    struct qcowkit_info info;
    char cwd[4096];

    test_create_file(top, size, 0, "base.raw");

    /* Open from another folder: the name is resolved next to top.qcow. */
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK_EQ(chdir("/"), 0);
    img = test_open_file(top, QCOWKIT_OPEN_RDWR);
    info = test_info(img);
    CHECK(strcmp(info.backing_file, "base.raw") == 0);
    CHECK(strstr(info.backing_path, "base.raw") != NULL);
    CHECK(qcowkit_backing(img) != NULL);
    CHECK_EQ(info.cluster_size, 512);
    CHECK_EQ(info.l2_bits, 12);
    read_check(img, model, 0, size, "raw backing, fresh overlay");

    write_model(img, model, 1000, 3000, 2); /* partial first and last */
    write_model(img, model, 700000, 1, 3);
    write_model(img, model, size - 5, 5, 4);
    read_check(img, model, 0, size, "raw backing after writes");
    CHECK_OK(qcowkit_close(img));

    /* The backing file is untouched. */
    {
        size_t len;
        uint8_t *b = test_read_file(base, &len);
        uint8_t *want = test_xmalloc(size);
        CHECK_EQ(len, size);
        test_pattern(want, size, 0, 1);
        CHECK_MEM_EQ(b, want, size);
        free(b);
        free(want);
    }

    /* Reopen via a relative path from the parent folder. */
    {
        char *slash = strrchr(g_dir, '/');
        char *parent = strndup(g_dir, (size_t)(slash - g_dir));
        char rel[4096];
        CHECK_EQ(chdir(parent[0] ? parent : "/"), 0);
        snprintf(rel, sizeof(rel), "%s/top.qcow", slash + 1);
        img = test_open_file(rel, QCOWKIT_OPEN_RDONLY);
        read_check(img, model, 0, size, "reopened by relative path");
        CHECK_OK(qcowkit_close(img));
        free(parent);
    }

    /* Without the backing file everything unwritten reads as zeros. */
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING);
    CHECK(qcowkit_backing(img) == NULL);
    {
        uint8_t buf[512];
        CHECK_OK(qcowkit_pread(img, buf, sizeof(buf), 2048 * 100));
        CHECK_ZERO(buf, sizeof(buf));
    }
    CHECK_OK(qcowkit_close(img));

    CHECK_EQ(chdir(cwd), 0);
    free(model);
    free(base);
    free(top);
}

/* base.qcow <- sub/mid.qcow ("../base.qcow") <- top3.qcow ("sub/mid.qcow") */
static void test_chain(void)
{
    const size_t size = 2 << 20;
    char *sub = test_path(g_dir, "sub");
    char *base = test_path(g_dir, "base.qcow");
    char *mid = test_path(g_dir, "sub/mid.qcow");
    char *top = test_path(g_dir, "top3.qcow");
    uint8_t *model = test_xcalloc(size);
    struct qcowkit_image *img;
    char cwd[4096];

    CHECK_EQ(mkdir(sub, 0700), 0);
    test_create_file(base, size, 4096, NULL);
    img = test_open_file(base, QCOWKIT_OPEN_RDWR);
    write_model(img, model, 0, size / 2 + 333, 10);
    CHECK_OK(qcowkit_close(img));

    test_create_file(mid, size, 1024, "../base.qcow");
    img = test_open_file(mid, QCOWKIT_OPEN_RDWR);
    write_model(img, model, 5000, 70000, 11);
    write_model(img, model, size / 2 + 100, 5000, 12);
    CHECK_OK(qcowkit_close(img));

    test_create_file(top, size, 0, "sub/mid.qcow");
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK_EQ(chdir("/"), 0);
    img = test_open_file(top, QCOWKIT_OPEN_RDWR);
    CHECK(qcowkit_backing(img) != NULL);
    CHECK(qcowkit_backing(qcowkit_backing(img)) != NULL);
    CHECK(qcowkit_backing(qcowkit_backing(qcowkit_backing(img))) == NULL);
    read_check(img, model, 0, size, "chain of 3, fresh top");
    write_model(img, model, 4000, 2000, 13);
    write_model(img, model, size / 2 + 4000, 3000, 14);
    write_model(img, model, size - 1, 1, 15);
    read_check(img, model, 0, size, "chain of 3 after writes");
    CHECK_OK(qcowkit_close(img));
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
    read_check(img, model, 0, size, "chain of 3 reopened");
    CHECK_OK(qcowkit_close(img));
    CHECK_EQ(chdir(cwd), 0);

    free(model);
    free(sub);
    free(base);
    free(mid);
    free(top);
}

/* Partial writes to new clusters keep the backing data, any cluster size. */
static void test_partial_cow(void)
{
    for (unsigned cb = 9; cb <= 16; cb++) {
        size_t cs = (size_t)1 << cb;
        size_t size = 8 * cs + 1536;
        char name[64];
        char *base, *top;
        uint8_t *model;
        struct qcowkit_image *img;

        snprintf(name, sizeof(name), "cow-base-%u.raw", cb);
        base = test_path(g_dir, name);
        model = make_raw(base, size, 20 + cb);
        snprintf(name, sizeof(name), "cow-top-%u.qcow", cb);
        top = test_path(g_dir, name);
        snprintf(name, sizeof(name), "cow-base-%u.raw", cb);
        test_create_file(top, size, (uint32_t)cs, name);
        img = test_open_file(top, QCOWKIT_OPEN_RDWR);
        CHECK_EQ(test_info(img).cluster_size, cs);

        write_model(img, model, cs / 2, 1, 30);              /* 1 byte */
        write_model(img, model, 2 * cs - 7, 14, 31);         /* straddle */
        write_model(img, model, 3 * cs + 1, cs - 2, 32);     /* inner */
        write_model(img, model, 5 * cs - 1, 2 * cs + 2, 33); /* wide */
        write_model(img, model, size - 700, 3, 34); /* last partial cluster */
        read_check(img, model, 0, size, "partial COW");
        CHECK_OK(qcowkit_close(img));
        img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
        read_check(img, model, 0, size, "partial COW reopened");
        CHECK_OK(qcowkit_close(img));
        free(model);
        free(base);
        free(top);
    }
}

static void test_missing_backing(void)
{
    char *top = test_path(g_dir, "orphan.qcow");
    struct qcowkit_image *img = NULL;
    struct qcowkit_open_opts oo;

    test_create_file(top, 1 << 20, 0, "does-not-exist.raw");
    qcowkit_open_opts_init(&oo);
    CHECK_ERR(qcowkit_open(top, &oo, &img), -ENOENT);
    CHECK(img == NULL);
    CHECK_MSG_HAS("does-not-exist.raw");

    /* Read-write too. */
    oo.flags = QCOWKIT_OPEN_RDWR;
    CHECK_ERR(qcowkit_open(top, &oo, &img), -ENOENT);
    CHECK_MSG_HAS("does-not-exist.raw");

    /* Through a memory backend named after a file in g_dir. */
    {
        size_t len;
        uint8_t *bytes = test_read_file(top, &len);
        struct qcowkit_io *io = test_mem_io(bytes, len);
        CHECK_ERR(qcowkit_open_io(io, top, &oo, &img), -ENOENT);
        CHECK_MSG_HAS("does-not-exist.raw");
        qcowkit_io_close(io);
        free(bytes);
    }

    oo.flags = QCOWKIT_OPEN_NO_BACKING;
    CHECK_OK(qcowkit_open(top, &oo, &img));
    CHECK(qcowkit_backing(img) == NULL);
    CHECK(strcmp(test_info(img).backing_file, "does-not-exist.raw") == 0);
    CHECK_OK(qcowkit_close(img));
    free(top);
}

static void test_loops(void)
{
    char *a = test_path(g_dir, "loop-a.qcow");
    char *b = test_path(g_dir, "loop-b.qcow");
    char *c = test_path(g_dir, "loop-self.qcow");
    char *d = test_path(g_dir, "loop-d.qcow");
    struct qcowkit_image *img = NULL;
    struct qcowkit_open_opts oo;

    test_create_file(a, 1 << 20, 0, "loop-b.qcow");
    test_create_file(b, 1 << 20, 0, "loop-a.qcow");
    /* create refuses to name the image itself: make it, then rename it. */
    test_create_file(d, 1 << 20, 0, "loop-self.qcow");
    CHECK(rename(d, c) == 0);
    /* A name that reaches a through another spelling. */
    test_create_file(d, 1 << 20, 0, "./loop-a.qcow");
    qcowkit_open_opts_init(&oo);
    CHECK_ERR(qcowkit_open(a, &oo, &img), -ELOOP);
    CHECK(img == NULL);
    CHECK_ERR(qcowkit_open(b, &oo, &img), -ELOOP);
    CHECK_ERR(qcowkit_open(c, &oo, &img), -ELOOP);
    CHECK_ERR(qcowkit_open(d, &oo, &img), -ELOOP);
    oo.flags = QCOWKIT_OPEN_NO_BACKING;
    CHECK_OK(qcowkit_open(a, &oo, &img));
    CHECK_OK(qcowkit_close(img));
    free(a);
    free(b);
    free(c);
    free(d);
}

static void test_short_backing(void)
{
    const size_t bsize = 10000; /* not a multiple of 512 */
    const size_t size = 1 << 20;
    char *base = test_path(g_dir, "short.raw");
    char *qbase = test_path(g_dir, "short.qcow");
    char *top = test_path(g_dir, "short-top.qcow");
    char *top2 = test_path(g_dir, "short-top2.qcow");
    uint8_t *data = make_raw(base, bsize, 40);
    uint8_t *model = test_xcalloc(size);
    struct qcowkit_image *img;

    memcpy(model, data, bsize);
    for (uint32_t cs = 512; cs <= 65536; cs *= 8) {
        test_create_file(top, size, cs, "short.raw");
        img = test_open_file(top, QCOWKIT_OPEN_RDWR);
        read_check(img, model, 0, size, "short raw backing");
        /* A write in the cluster holding the end of the backing file. */
        write_model(img, model, 9000, 1, 41);
        write_model(img, model, 10001, 2, 42);
        read_check(img, model, 0, size, "short raw backing, COW at its end");
        CHECK_OK(qcowkit_close(img));
        memset(model, 0, size);
        memcpy(model, data, bsize);
    }

    /* A qcow backing file with a smaller virtual size. */
    test_create_file(qbase, 8192, 512, NULL);
    img = test_open_file(qbase, QCOWKIT_OPEN_RDWR);
    memset(model, 0, size);
    write_model(img, model, 0, 8192, 43);
    CHECK_OK(qcowkit_close(img));
    test_create_file(top2, size, 4096, "short.qcow");
    img = test_open_file(top2, QCOWKIT_OPEN_RDWR);
    read_check(img, model, 0, size, "short qcow backing");
    write_model(img, model, 8000, 500, 44);
    read_check(img, model, 0, 65536, "short qcow backing, COW at its end");
    CHECK_OK(qcowkit_close(img));

    free(data);
    free(model);
    free(base);
    free(qbase);
    free(top);
    free(top2);
}

static void test_make_empty(void)
{
    const size_t size = 1 << 20;
    char *base = test_path(g_dir, "me.raw");
    char *top = test_path(g_dir, "me.qcow");
    uint8_t *backing = make_raw(base, size, 50);
    uint8_t *model = test_xmalloc(size);
    struct qcowkit_image *img;
    struct qcowkit_extent ext;

    memcpy(model, backing, size);
    test_create_file(top, size, 4096, "me.raw");
    img = test_open_file(top, QCOWKIT_OPEN_RDWR);
    write_model(img, model, 100, 300000, 51);
    write_model(img, model, size - 4096, 4096, 52);
    read_check(img, model, 0, size, "before make_empty");
    CHECK_OK(qcowkit_make_empty(img));
    read_check(img, backing, 0, size, "after make_empty");
    CHECK_OK(qcowkit_block_status(img, 0, size, &ext));
    CHECK_EQ(ext.flags & QCOWKIT_EXTENT_ALLOCATED, 0);
    CHECK_EQ_U64(ext.length, size);

    /* The image keeps working after make_empty. */
    memcpy(model, backing, size);
    write_model(img, model, 5000, 10000, 53);
    read_check(img, model, 0, size, "write after make_empty");
    CHECK_OK(qcowkit_close(img));
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
    read_check(img, model, 0, size, "reopened after make_empty");
    CHECK_OK(qcowkit_close(img));

    /* make_empty again leaves the file as small as a new image. */
    img = test_open_file(top, QCOWKIT_OPEN_RDWR);
    CHECK_OK(qcowkit_make_empty(img));
    CHECK_OK(qcowkit_close(img));
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
    read_check(img, backing, 0, size, "reopened after second make_empty");
    CHECK(test_info(img).file_size <= test_qemu_file_size(size, 12, 9, 6));
    /* Read-only images refuse. */
    CHECK(qcowkit_make_empty(img) < 0);
    CHECK_OK(qcowkit_close(img));

    free(backing);
    free(model);
    free(base);
    free(top);
}

int main(void)
{
    test_init(240);
    g_dir = test_mkdtemp();
    test_raw_backing();
    test_chain();
    test_partial_cow();
    test_missing_backing();
    test_loops();
    test_short_backing();
    test_make_empty();
    test_rm_rf(g_dir);
    free(g_dir);
    printf("test-backing: ok\n");
    return 0;
}
