/*
 * test-discard: qcowkit_discard and qcowkit_pwrite_zeroes_flags with
 * QCOWKIT_ZEROES_MAY_UNMAP give space back (st_blocks of a real file
 * shrinks), read back as they should (zeros, or the backing file's data),
 * leave partial clusters and neighbouring compressed clusters alone, and
 * leave images that qcowkit_check finds clean (no corruption, no leak).
 * A failing punch or sync (the fault backend) leaves a consistent image.
 */
#include <sys/stat.h>

#include "test-backends.h"
#include "test.h"

#define MIB (UINT64_C(1) << 20)

static char *g_dir;

static char *path_of(const char *name)
{
    return test_concat3(g_dir, "/", name);
}

static uint64_t blocks_of(const char *path)
{
    struct stat st;

    CHECK(stat(path, &st) == 0);
    return (uint64_t)st.st_blocks * 512;
}

static void create_qcow(const char *path, uint64_t size, uint32_t cs,
                        const char *backing)
{
    struct qcowkit_create_opts co;

    test_create_opts(&co, size, cs, backing);
    CHECK_OK(qcowkit_create(path, &co, 0));
}

static struct qcowkit_image *open_path(const char *path, unsigned flags,
                                       enum qcowkit_format format)
{
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img = NULL;

    qcowkit_open_opts_init(&oo);
    oo.flags = flags;
    oo.format = format;
    CHECK_OK(qcowkit_open(path, &oo, &img));
    return img;
}

/* qcowkit_check: no corruption and no leak. */
static void check_clean(struct qcowkit_image *img)
{
    struct qcowkit_check_report rep;

    qcowkit_check_report_init(&rep);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &rep));
    CHECK_EQ_U64(rep.corruptions, 0);
    CHECK_EQ_U64(rep.leaks, 0);
}

static void check_reads(struct qcowkit_image *img, uint64_t off, size_t n,
                        const uint8_t *want)
{
    uint8_t *got = test_xmalloc(n);

    CHECK_OK(qcowkit_pread(img, got, n, off));
    if (want)
        CHECK_MEM_EQ(got, want, n);
    else
        CHECK_ZERO(got, n);
    free(got);
}

static uint8_t *random_data(size_t n, uint64_t seed)
{
    struct test_rng r;
    uint8_t *p = test_xmalloc(n);

    test_rng_seed(&r, seed);
    test_rng_fill(&r, p, n);
    return p;
}

/* Discarded data gives its space back and reads as zeros. */
static void test_space_back(void)
{
    char *path = path_of("plain.qcow");
    uint64_t data = 4 * MIB, before, after;
    uint8_t *buf = random_data(data, 1);
    struct qcowkit_image *img;

    create_qcow(path, 16 * MIB, 65536, NULL);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, buf, data, 0));
    CHECK_OK(qcowkit_pwrite(img, buf, 65536, 8 * MIB)); /* kept */
    CHECK_OK(qcowkit_flush(img));
    before = blocks_of(path);
    CHECK_OK(qcowkit_discard(img, 0, data));
    after = blocks_of(path);
    CHECK(after + data - data / 16 <= before); /* most of it came back */
    check_reads(img, 0, data, NULL);
    check_reads(img, 8 * MIB, 65536, buf);
    check_clean(img);
    /* Discarding again, or where nothing is, changes nothing. */
    CHECK_OK(qcowkit_discard(img, 0, 16 * MIB));
    check_reads(img, 8 * MIB - 65536, 65536, NULL);
    check_reads(img, 0, 65536, NULL);
    CHECK_OK(qcowkit_close(img));
    /* It stays so once reopened. */
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    check_reads(img, 0, data, NULL);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(buf);
    free(path);
}

/* Only whole clusters go; the partial ones at both ends stay. */
static void test_partial(void)
{
    char *path = path_of("partial.qcow");
    const uint32_t cs = 4096;
    uint8_t *buf = random_data(4 * cs, 2);
    struct qcowkit_image *img;
    struct qcowkit_extent e;

    create_qcow(path, MIB, cs, NULL);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, buf, 4 * cs, 0));
    /* Half of cluster 0, clusters 1 and 2, half of cluster 3. */
    CHECK_OK(qcowkit_discard(img, cs / 2, 3 * cs));
    check_reads(img, 0, cs, buf);
    check_reads(img, cs, 2 * cs, NULL);
    check_reads(img, 3 * cs, cs, buf + 3 * cs);
    CHECK_OK(qcowkit_block_status(img, cs, 2 * cs, &e));
    CHECK(!(e.flags & QCOWKIT_EXTENT_ALLOCATED));
    CHECK_EQ_U64(e.length, 2 * cs);
    /* Less than a cluster: nothing happens. */
    CHECK_OK(qcowkit_discard(img, 1, cs));
    check_reads(img, 0, cs, buf);
    /* The last cluster counts as whole when the range ends the image. */
    CHECK_OK(qcowkit_pwrite(img, buf, cs, MIB - cs));
    CHECK_OK(qcowkit_discard(img, MIB - cs, cs));
    check_reads(img, MIB - cs, cs, NULL);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(buf);
    free(path);
}

/* Compressed clusters are discarded; their neighbours read right. */
static void test_compressed(void)
{
    char *path = path_of("packed.qcow");
    const uint32_t cs = 4096;
    const int n = 16;
    uint8_t *buf = test_xmalloc((size_t)n * cs);
    struct qcowkit_image *img;

    for (int i = 0; i < n; i++)
        test_compressible(buf + (size_t)i * cs, cs, (uint32_t)i + 1);
    create_qcow(path, MIB, cs, NULL);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf, (size_t)n * cs, 0));
    CHECK_OK(qcowkit_flush(img));
    CHECK_OK(qcowkit_discard(img, 3 * cs, 2 * cs)); /* 3 and 4 */
    CHECK_OK(qcowkit_discard(img, 9 * cs, cs));     /* 9 */
    CHECK_OK(qcowkit_close(img));
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    for (int i = 0; i < n; i++)
        check_reads(img, (uint64_t)i * cs, cs,
                    i == 3 || i == 4 || i == 9 ? NULL : buf + (size_t)i * cs);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(buf);
    free(path);
}

/* With a backing file: discard shows it again; unmapped zeros read zeros. */
static void test_overlay(void)
{
    char *base = path_of("base.qcow"), *top = path_of("top.qcow");
    uint64_t data = 2 * MIB, before, after;
    uint8_t *under = random_data(4 * MIB, 3), *over = random_data(data, 4);
    struct qcowkit_image *img;

    create_qcow(base, 4 * MIB, 65536, NULL);
    img = open_path(base, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, under, 4 * MIB, 0));
    CHECK_OK(qcowkit_close(img));
    create_qcow(top, 8 * MIB, 65536, "base.qcow");
    img = open_path(top, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);

    CHECK_OK(qcowkit_pwrite(img, over, data, 0));
    CHECK_OK(qcowkit_flush(img));
    before = blocks_of(top);
    CHECK_OK(qcowkit_discard(img, 0, data));
    after = blocks_of(top);
    CHECK(after + data - data / 16 <= before);
    check_reads(img, 0, data, under);
    check_clean(img);

    /* Zeros that may unmap, over data over the backing file and past
     * its end: read as zeros, and the old space comes back. */
    CHECK_OK(qcowkit_pwrite(img, over, data, MIB));
    CHECK_OK(qcowkit_pwrite(img, over, data, 5 * MIB));
    CHECK_OK(qcowkit_flush(img));
    before = blocks_of(top);
    CHECK_OK(
        qcowkit_pwrite_zeroes_flags(img, data, MIB, QCOWKIT_ZEROES_MAY_UNMAP));
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, data, 5 * MIB,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    after = blocks_of(top);
    CHECK(after + 2 * data - data / 8 <= before);
    check_reads(img, MIB, data, NULL);
    check_reads(img, 5 * MIB, data, NULL);
    check_reads(img, 0, MIB, under);
    check_reads(img, 3 * MIB, MIB, under + 3 * MIB);
    check_clean(img);
    /* Where nothing was allocated over the backing file too. */
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, MIB + 100, 3 * MIB - 100,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    check_reads(img, 3 * MIB - 100, MIB + 100, NULL);
    check_reads(img, 0, MIB, under);
    check_reads(img, MIB, 2 * MIB - 100, NULL);
    CHECK_OK(qcowkit_close(img));
    img = open_path(top, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    check_reads(img, 0, MIB, under);
    check_reads(img, MIB, 7 * MIB, NULL);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(under);
    free(over);
    free(base);
    free(top);
}

/* Without a backing file, unmapped zeros are discards: space comes back. */
static void test_unmap_plain(void)
{
    char *path = path_of("unmap.qcow");
    uint64_t data = 2 * MIB, before, after;
    uint8_t *buf = random_data(data, 5);
    struct qcowkit_image *img;

    create_qcow(path, 4 * MIB, 4096, NULL);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, buf, data, 0));
    CHECK_OK(qcowkit_flush(img));
    before = blocks_of(path);
    /* Without the flag: written zeros, nothing given back. */
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, data, 0, 0));
    CHECK(blocks_of(path) >= before);
    check_reads(img, 0, data, NULL);
    CHECK_OK(qcowkit_pwrite(img, buf, data, 0));
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, data - 10, 5,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    after = blocks_of(path);
    CHECK(after + data - data / 8 <= before);
    check_reads(img, 0, 5, buf);
    check_reads(img, 5, data - 10, NULL);
    check_reads(img, data - 5, 5, buf + data - 5);
    check_clean(img);
    CHECK_ERR(qcowkit_pwrite_zeroes_flags(img, 1, 0, 2), -EINVAL);
    CHECK_ERR(qcowkit_discard(img, 4 * MIB - 512, 1024), -EINVAL);
    CHECK_OK(qcowkit_close(img));
    free(buf);
    free(path);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");

    CHECK(f != NULL);
    CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* Raw images: discard and unmapped zeros punch holes. */
static void test_raw(void)
{
    char *path = path_of("disk.raw");
    uint64_t size = 8 * MIB, before, after;
    uint8_t *buf = random_data(size, 6);
    struct qcowkit_image *img;

    write_file(path, buf, size);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_RAW);
    before = blocks_of(path);
    CHECK_OK(qcowkit_discard(img, 0, 2 * MIB + 100));
    after = blocks_of(path);
    CHECK(after + 2 * MIB - MIB / 8 <= before);
    check_reads(img, 0, 2 * MIB, NULL);
    check_reads(img, 2 * MIB, MIB, buf + 2 * MIB);

    before = after;
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, 2 * MIB, 4 * MIB,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    after = blocks_of(path);
    CHECK(after + 2 * MIB - MIB / 8 <= before);
    check_reads(img, 4 * MIB, 2 * MIB, NULL);
    /* Without the flag: zeros (a zeroed range or written). */
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, MIB + 3, 2 * MIB + 7, 0));
    check_reads(img, 2 * MIB + 7, MIB + 3, NULL);
    check_reads(img, 2 * MIB, 7, buf + 2 * MIB);
    check_reads(img, 3 * MIB + 10, MIB - 10, buf + 3 * MIB + 10);
    check_reads(img, 6 * MIB, 2 * MIB, buf + 6 * MIB);
    CHECK_OK(qcowkit_close(img));

    /* Probed: sector 0 keeps the guard, and discard leaves it alone. */
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_AUTO);
    CHECK_OK(qcowkit_pwrite(img, buf, 4096, 0));
    CHECK_OK(qcowkit_discard(img, 0, 4096));
    check_reads(img, 0, 512, buf);
    check_reads(img, 512, 4096 - 512, NULL);
    CHECK_OK(
        qcowkit_pwrite_zeroes_flags(img, 4096, 0, QCOWKIT_ZEROES_MAY_UNMAP));
    check_reads(img, 0, 4096, NULL);
    /* "QED\0" by zeroing a byte is refused. */
    CHECK_OK(qcowkit_pwrite(img, "QEDx", 4, 0));
    CHECK_ERR(qcowkit_pwrite_zeroes_flags(img, 1, 3, QCOWKIT_ZEROES_MAY_UNMAP),
              -EPERM);
    CHECK_ERR(qcowkit_pwrite_zeroes_flags(img, 1, 3, 0), -EPERM);
    check_reads(img, 0, 4, (const uint8_t *)"QEDx");
    CHECK_OK(qcowkit_close(img));
    free(buf);
    free(path);
}

/* Read-only images refuse both, and keep their data. */
static void test_read_only(void)
{
    char *path = path_of("ro.qcow"), *raw = path_of("ro.raw");
    uint8_t *buf = random_data(65536, 7);
    struct qcowkit_image *img;

    create_qcow(path, MIB, 4096, NULL);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, buf, 65536, 0));
    CHECK_OK(qcowkit_close(img));
    img = open_path(path, QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_QCOW);
    CHECK_ERR(qcowkit_discard(img, 0, 65536), -EROFS);
    CHECK_ERR(
        qcowkit_pwrite_zeroes_flags(img, 65536, 0, QCOWKIT_ZEROES_MAY_UNMAP),
        -EROFS);
    check_reads(img, 0, 65536, buf);
    CHECK_OK(qcowkit_close(img));

    write_file(raw, buf, 65536);
    img = open_path(raw, QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_RAW);
    CHECK_ERR(qcowkit_discard(img, 0, 65536), -EROFS);
    check_reads(img, 0, 65536, buf);
    CHECK_OK(qcowkit_close(img));
    free(buf);
    free(path);
    free(raw);
}

/* qemu-img compare of a discarded image with the raw it should equal. */
static void test_qemu_compare(void)
{
    char *path = path_of("cmp.qcow"), *raw = path_of("cmp.raw");
    char cmd[8192];
    uint64_t size = 2 * MIB;
    uint8_t *buf = random_data(size, 8);
    struct qcowkit_image *img;
    int rc;

    if (system("qemu-img --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "qemu-img not found: comparison skipped\n");
        return;
    }
    create_qcow(path, size, 4096, NULL);
    img = open_path(path, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, buf, size, 0));
    for (int i = 0; i < 16; i++) /* compressible, over the data there */
        test_compressible(buf + MIB + i * 4096, 4096, (uint32_t)i);
    CHECK_OK(qcowkit_pwrite_compressed(img, buf + MIB, 16 * 4096, MIB));
    CHECK_OK(qcowkit_discard(img, 1000, 300000));
    CHECK_OK(qcowkit_discard(img, MIB + 4096, 3 * 4096));
    CHECK_OK(qcowkit_close(img));
    memset(buf + 4096, 0, 72 * 4096); /* whole clusters of [1000, 301000) */
    memset(buf + MIB + 4096, 0, 3 * 4096);
    write_file(raw, buf, size);
    snprintf(cmd, sizeof cmd,
             "qemu-img compare -q -f qcow -F raw '%s' '%s' 2>&1", path, raw);
    rc = system(cmd);
    CHECK_EQ(rc, 0);
    free(buf);
    free(path);
    free(raw);
}

/* A failing punch or sync: the image stays consistent. */
static void test_faults(void)
{
    const uint32_t cs = 4096;
    uint8_t *buf = random_data(8 * cs, 9);
    struct qcowkit_check_report rep;
    enum fault_op ops[] = {FAULT_OP_WRITE, FAULT_OP_FLUSH};

    for (int i = 0; i < 2; i++) {
        struct qcowkit_io *mem, *fault;
        struct qcowkit_image *img =
            test_mem_image(MIB, cs, NULL, "f.qcow", &mem);
        uint64_t writes;
        int rc;

        CHECK_OK(qcowkit_pwrite(img, buf, 8 * cs, 0));
        CHECK_OK(qcowkit_close(img));
        CHECK_OK(fault_backend_new(mem, &fault));
        img = test_open_io(fault, "f.qcow", QCOWKIT_OPEN_RDWR);
        writes = fault_backend_count(fault, FAULT_OP_WRITE);
        /* The table is written, synced, then the space punched (a
         * discard counts as a write). */
        CHECK_OK(fault_backend_arm(fault, ops[i],
                                   ops[i] == FAULT_OP_WRITE ? 2 : 1, 0, -EIO));
        rc = qcowkit_discard(img, 2 * cs, 4 * cs);
        CHECK_EQ(rc, -EIO);
        if (ops[i] == FAULT_OP_WRITE)
            CHECK_EQ_U64(fault_backend_count(fault, FAULT_OP_WRITE),
                         writes + 2);
        check_reads(img, 0, 2 * cs, buf);
        check_reads(img, 2 * cs, 4 * cs, NULL);
        check_reads(img, 6 * cs, 2 * cs, buf + 6 * cs);
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(fault);

        img = test_open_io(mem, "f.qcow", QCOWKIT_OPEN_RDWR);
        check_reads(img, 0, 2 * cs, buf);
        check_reads(img, 2 * cs, 4 * cs, NULL);
        check_reads(img, 6 * cs, 2 * cs, buf + 6 * cs);
        qcowkit_check_report_init(&rep);
        CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &rep));
        CHECK_EQ_U64(rep.corruptions, 0);
        /* The space not punched is a leak, no worse. */
        CHECK_EQ_U64(rep.leaks, 4);
        CHECK_OK(qcowkit_close(img));
        qcowkit_io_close(mem);
    }
    free(buf);
}

/* Encrypted: discard works; zeros that may unmap over a backing file are
 * written (compressed clusters would be plaintext). */
static void test_encrypted(void)
{
    static const uint8_t key[16] = "discard-key";
    char *base = path_of("enc-base.qcow"), *top = path_of("enc-top.qcow");
    uint8_t *under = random_data(MIB, 13), *over = random_data(MIB, 14);
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;

    create_qcow(base, MIB, 4096, NULL);
    img = open_path(base, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite(img, under, MIB, 0));
    CHECK_OK(qcowkit_close(img));
    test_create_opts(&co, MIB, 4096, "enc-base.qcow");
    co.key = key;
    co.key_len = sizeof key;
    CHECK_OK(qcowkit_create(top, &co, 0));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR;
    oo.format = QCOWKIT_FORMAT_QCOW;
    oo.key = key;
    oo.key_len = sizeof key;
    CHECK_OK(qcowkit_open(top, &oo, &img));
    CHECK_OK(qcowkit_pwrite(img, over, MIB, 0));
    CHECK_OK(qcowkit_discard(img, 0, 65536));
    check_reads(img, 0, 65536, under);
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, 65536, 65536,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    check_reads(img, 65536, 65536, NULL);
    check_reads(img, 2 * 65536, 65536, over + 2 * 65536);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    CHECK_OK(qcowkit_open(top, &oo, &img));
    check_reads(img, 0, 65536, under);
    check_reads(img, 65536, 65536, NULL);
    CHECK_OK(qcowkit_close(img));
    free(under);
    free(over);
    free(base);
    free(top);
}

/* A table left empty goes too: its L1 entry is cleared, it can come back. */
static void test_table_freed(void)
{
    const uint32_t cs = 4096; /* tables of 512 entries map 2 MiB */
    uint8_t *buf = random_data(2 * MIB, 11), *bytes;
    struct qcowkit_io *io;
    struct qcowkit_image *img =
        test_mem_image(8 * MIB, cs, NULL, "t.qcow", &io);
    uint64_t l1_pos;
    size_t len;

    CHECK_OK(qcowkit_pwrite(img, buf, 2 * MIB, 2 * MIB));
    CHECK_OK(qcowkit_pwrite(img, buf, cs, 4 * MIB));
    CHECK_OK(qcowkit_flush(img));
    bytes = test_mem_bytes(io, &len);
    CHECK(test_l2_entry_pos(bytes, len, 2 * MIB, &l1_pos) != 0);
    free(bytes);
    CHECK_OK(qcowkit_discard(img, 2 * MIB - 100, 2 * MIB + 200));
    check_clean(img);
    bytes = test_mem_bytes(io, &len);
    CHECK(test_l2_entry_pos(bytes, len, 2 * MIB, &l1_pos) == 0);
    CHECK_EQ_U64(test_get_be64(bytes + l1_pos), 0);
    /* The table of 4 MiB keeps a cluster: it stays. */
    CHECK(test_l2_entry_pos(bytes, len, 4 * MIB, NULL) != 0);
    check_reads(img, 2 * MIB, 2 * MIB, NULL);
    check_reads(img, 4 * MIB, cs, buf);
    /* Written again: a new table. */
    CHECK_OK(qcowkit_pwrite(img, buf, cs, 3 * MIB));
    CHECK_OK(qcowkit_close(img));
    img = test_open_io(io, "t.qcow", QCOWKIT_OPEN_RDWR);
    check_reads(img, 3 * MIB, cs, buf);
    check_reads(img, 2 * MIB, MIB, NULL);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(bytes);
    qcowkit_io_close(io);
    free(buf);
}

/* The L1 write that frees an empty table fails: the table stays. */
static void test_drop_fault(void)
{
    const uint32_t cs = 4096;
    uint8_t *buf = random_data(cs, 12);
    struct qcowkit_io *mem, *fault;
    struct qcowkit_image *img =
        test_mem_image(8 * MIB, cs, NULL, "g.qcow", &mem);
    struct qcowkit_check_report rep;

    CHECK_OK(qcowkit_pwrite(img, buf, cs, 0));
    CHECK_OK(qcowkit_pwrite(img, buf, cs, 2 * MIB));
    CHECK_OK(qcowkit_close(img));
    CHECK_OK(fault_backend_new(mem, &fault));
    img = test_open_io(fault, "g.qcow", QCOWKIT_OPEN_RDWR);
    CHECK_OK(fault_backend_arm(fault, FAULT_OP_WRITE, 1, 0, -EIO));
    CHECK_ERR(qcowkit_discard(img, 2 * MIB, cs), -EIO);
    check_reads(img, 2 * MIB, cs, NULL);
    /* Written again into the kept table: it must be found after reopen. */
    CHECK_OK(qcowkit_pwrite(img, buf, cs, 2 * MIB + cs));
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(fault);
    img = test_open_io(mem, "g.qcow", QCOWKIT_OPEN_RDWR);
    check_reads(img, 0, cs, buf);
    check_reads(img, 2 * MIB, cs, NULL);
    check_reads(img, 2 * MIB + cs, cs, buf);
    qcowkit_check_report_init(&rep);
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &rep));
    CHECK_EQ_U64(rep.corruptions, 0);
    /* The batch was still finished: the cleared cluster was punched. */
    CHECK_EQ_U64(rep.leaks, 0);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(mem);
    free(buf);
}

/*
 * Entries the trust rules refuse, or space another entry of the table
 * still points at: cleared, never punched (the memory backend zeros what
 * it punches, so a wrong punch shows).
 */
static void test_never_punched(void)
{
    const uint32_t cs = 4096;
    uint8_t *buf = random_data(4 * cs, 10), *bytes;
    struct qcowkit_io *io, *io2;
    struct qcowkit_image *img = test_mem_image(MIB, cs, NULL, "d.qcow", &io);
    uint64_t e0, e1, e2, l1_pos;
    size_t len;

    CHECK_OK(qcowkit_pwrite(img, buf, 4 * cs, 0));
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, &len);
    e0 = test_l2_entry_pos(bytes, len, 0, &l1_pos);
    e1 = test_l2_entry_pos(bytes, len, cs, NULL);
    e2 = test_l2_entry_pos(bytes, len, 2 * cs, NULL);
    CHECK(e0 && e1 && e2);
    /* Cluster 1 shares cluster 0's space; cluster 2 points at the L2
     * table itself (refused by the trust rules). */
    memcpy(bytes + e1, bytes + e0, 8);
    memcpy(bytes + e2, bytes + l1_pos, 8);
    io2 = test_mem_io(bytes, len);
    img = test_open_io(io2, "d.qcow", QCOWKIT_OPEN_RDWR);
    CHECK_OK(qcowkit_discard(img, 0, cs));
    CHECK_OK(qcowkit_discard(img, 2 * cs, cs));
    CHECK_OK(qcowkit_close(img));
    /* Read back from the disk: a punch of the table or of cluster 0's
     * space would show as zeros in clusters 1 and 3. */
    img = test_open_io(io2, "d.qcow", QCOWKIT_OPEN_RDWR);
    check_reads(img, 0, cs, NULL);
    check_reads(img, cs, cs, buf);
    check_reads(img, 2 * cs, cs, NULL);
    check_reads(img, 3 * cs, cs, buf + 3 * cs);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io2);
    free(bytes);
    qcowkit_io_close(io);
    free(buf);
}

/* Zeroing the same range again over a backing file appends nothing: the
 * clusters already hold the zero stream. */
static void test_unmap_again(void)
{
    char *base = path_of("again-base.qcow"), *top = path_of("again-top.qcow");
    struct qcowkit_image *img;
    struct stat st;
    off_t size;

    create_qcow(base, 4 * MIB, 4096, NULL);
    create_qcow(top, 4 * MIB, 4096, "again-base.qcow");
    img = open_path(top, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_QCOW);
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, 2 * MIB, MIB,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    CHECK(stat(top, &st) == 0);
    size = st.st_size;
    for (int i = 0; i < 3; i++)
        CHECK_OK(qcowkit_pwrite_zeroes_flags(img, 2 * MIB, MIB,
                                             QCOWKIT_ZEROES_MAY_UNMAP));
    CHECK(stat(top, &st) == 0);
    CHECK(st.st_size == size);
    /* One cluster written in between: only it gets a new stream. */
    CHECK_OK(qcowkit_pwrite(img, "x", 1, 2 * MIB));
    CHECK(stat(top, &st) == 0);
    size = st.st_size;
    CHECK_OK(qcowkit_pwrite_zeroes_flags(img, 2 * MIB, MIB,
                                         QCOWKIT_ZEROES_MAY_UNMAP));
    CHECK(stat(top, &st) == 0);
    CHECK(st.st_size > size && st.st_size < size + 128);
    check_reads(img, MIB, 2 * MIB, NULL);
    check_clean(img);
    CHECK_OK(qcowkit_close(img));
    free(base);
    free(top);
}

int main(void)
{
    test_init(120);
    g_dir = test_mkdtemp();
    test_space_back();
    test_partial();
    test_compressed();
    test_overlay();
    test_unmap_plain();
    test_unmap_again();
    test_raw();
    test_read_only();
    test_qemu_compare();
    test_faults();
    test_never_punched();
    test_table_freed();
    test_drop_fault();
    test_encrypted();
    free(g_dir);
    return 0;
}
