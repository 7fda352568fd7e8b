/*
 * test-chain-status: qcowkit_block_status_chain over qcow over qcow over a
 * sparse raw file, checked byte by byte against a model of which layer
 * holds what; short backing files, raw holes, compressed clusters,
 * encrypted layers opened without their key, the run limit, the range
 * and struct_size contract, and a corrupt entry in a backing file.
 */
#include "test.h"

#define TOP_SIZE  ((4u << 20) + 1536u) /* 512-byte clusters */
#define MID_SIZE  ((3u << 20) + 512u)  /* 4 KiB clusters, a short last one */
#define BASE_SIZE ((2u << 20) + 100u)  /* raw, not a multiple of 512 */
#define TOP_CS    512u
#define MID_CS    4096u

#define ALLOC QCOWKIT_EXTENT_ALLOCATED
#define COMPR QCOWKIT_EXTENT_COMPRESSED
#define HOST  QCOWKIT_EXTENT_HOST_OFFSET
#define ZERO  QCOWKIT_EXTENT_ZERO

static char *g_dir;

/* What a byte of the top image is expected to report: depth << 4 | flags. */
struct model {
    uint8_t top[TOP_SIZE / TOP_CS]; /* 0, or flags of the cluster */
    uint8_t mid[(MID_SIZE + MID_CS - 1) / MID_CS];
    uint8_t *base_hole; /* per byte of base: 1 if the file system says hole */
    uint8_t *expect;    /* per byte of top */
};

static uint8_t code(unsigned depth, unsigned flags)
{
    return (uint8_t)(depth << 4 | flags);
}

static uint8_t expect_at(const struct model *m, uint64_t b)
{
    if (m->top[b / TOP_CS])
        return code(0, m->top[b / TOP_CS]);
    if (b >= MID_SIZE)
        return code(0, ZERO);
    if (m->mid[b / MID_CS])
        return code(1, m->mid[b / MID_CS]);
    if (b >= BASE_SIZE)
        return code(1, ZERO);
    return code(2, ALLOC | HOST | (m->base_hole[b] ? ZERO : 0));
}

/* Holes of the base file as its file system reports them. */
static void find_holes(const char *path, uint8_t *hole)
{
    int fd = open(path, O_RDONLY);
    off_t at = 0;

    CHECK(fd >= 0);
    memset(hole, 1, BASE_SIZE);
    while (at < (off_t)BASE_SIZE) {
        off_t data = lseek(fd, at, SEEK_DATA), end;
        if (data < 0)
            break;
        end = lseek(fd, data, SEEK_HOLE);
        if (end < 0 || end > (off_t)BASE_SIZE)
            end = BASE_SIZE;
        memset(hole + data, 0, (size_t)(end - data));
        at = end;
    }
    close(fd);
}

static void mark(uint8_t *clusters, uint32_t cs, uint64_t off, uint64_t n,
                 uint8_t flags)
{
    for (uint64_t c = off / cs; c <= (off + n - 1) / cs; c++)
        clusters[c] = flags;
}

/* Scattered data, some holes and a tail that is not a whole sector. */
static void make_base(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    uint8_t buf[8192];

    CHECK(fd >= 0);
    CHECK_EQ(ftruncate(fd, BASE_SIZE), 0);
    for (uint64_t off = 0; off < BASE_SIZE; off += 300000) {
        size_t n = off % 3 ? 4096 : 8192;
        if (off + n > BASE_SIZE)
            n = BASE_SIZE - off;
        test_pattern(buf, n, off, 1);
        CHECK_EQ(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    }
    test_pattern(buf, 100, BASE_SIZE - 100, 1);
    CHECK_EQ(pwrite(fd, buf, 100, BASE_SIZE - 100), 100);
    close(fd);
}

static void write_at(struct qcowkit_image *img, uint64_t off, size_t n,
                     uint32_t tag)
{
    uint8_t *buf = test_xmalloc(n);

    test_pattern(buf, n, off, tag);
    CHECK_OK(qcowkit_pwrite(img, buf, n, off));
    free(buf);
}

/* Random writes: compressed clusters first, then plain ones over some. */
static void fill_mid(const char *path, struct model *m, struct test_rng *r)
{
    struct qcowkit_image *img = test_open_file(path, QCOWKIT_OPEN_RDWR);
    uint8_t buf[MID_CS];

    for (int i = 0; i < 40; i++) {
        uint64_t c = test_rng_below(r, MID_SIZE / MID_CS);
        test_compressible(buf, MID_CS, (uint32_t)i);
        CHECK_OK(qcowkit_pwrite_compressed(img, buf, MID_CS, c * MID_CS));
        m->mid[c] = ALLOC | COMPR;
    }
    for (int i = 0; i < 60; i++) {
        uint64_t off = test_rng_below(r, MID_SIZE - 1);
        size_t n = 1 + test_rng_below(r, 3 * MID_CS);
        if (n > MID_SIZE - off)
            n = MID_SIZE - off;
        write_at(img, off, n, 2);
        mark(m->mid, MID_CS, off, n, ALLOC | HOST);
    }
    /* The short last cluster. */
    write_at(img, MID_SIZE - 10, 10, 2);
    mark(m->mid, MID_CS, MID_SIZE - 10, 10, ALLOC | HOST);
    CHECK_OK(qcowkit_close(img));
}

static void fill_top(const char *path, struct model *m, struct test_rng *r)
{
    struct qcowkit_image *img = test_open_file(path, QCOWKIT_OPEN_RDWR);
    uint8_t buf[TOP_CS];

    for (int i = 0; i < 30; i++) {
        uint64_t c = test_rng_below(r, TOP_SIZE / TOP_CS);
        test_compressible(buf, TOP_CS, (uint32_t)i);
        CHECK_OK(qcowkit_pwrite_compressed(img, buf, TOP_CS, c * TOP_CS));
        m->top[c] = ALLOC | COMPR;
    }
    for (int i = 0; i < 200; i++) {
        uint64_t off = test_rng_below(r, TOP_SIZE - 1);
        size_t n = 1 + test_rng_below(r, 5 * TOP_CS);
        if (n > TOP_SIZE - off)
            n = TOP_SIZE - off;
        write_at(img, off, n, 3);
        mark(m->top, TOP_CS, off, n, ALLOC | HOST);
    }
    CHECK_OK(qcowkit_close(img));
}

static struct qcowkit_image *layer_at(struct qcowkit_image *img, unsigned d)
{
    while (d-- > 0)
        img = qcowkit_backing(img);
    return img;
}

static struct qcowkit_chain_extent chain_status(struct qcowkit_image *img,
                                                uint64_t off, uint64_t n)
{
    struct qcowkit_chain_extent x;

    qcowkit_chain_extent_init(&x);
    CHECK_OK(qcowkit_block_status_chain(img, off, n, &x));
    return x;
}

/* The data where a layer says it lies: its file at host_offset. */
static void check_host(const struct qcowkit_chain_extent *x, const char *file,
                       const uint8_t *want, size_t n)
{
    uint8_t *got = test_xmalloc(n);
    int fd = open(file, O_RDONLY);

    CHECK(fd >= 0);
    CHECK_EQ(pread(fd, got, n, (off_t)x->host_offset), (ssize_t)n);
    close(fd);
    CHECK_MEM_EQ(got, want, n);
    free(got);
}

/* One answer against the model, the data and the files. */
static void check_run(struct qcowkit_image *top, const struct model *m,
                      const struct qcowkit_chain_extent *x, uint64_t off,
                      uint64_t count, char *const files[3])
{
    size_t n = x->length < 65536 ? (size_t)x->length : 65536;
    uint8_t *a = test_xmalloc(n), *b = test_xmalloc(n);
    uint8_t want = m->expect[off];

    CHECK_EQ_U64(x->offset, off);
    CHECK(x->length >= 1 && x->length <= count);
    if (x->flags & ALLOC)
        CHECK(x->length <= QCOWKIT_CHAIN_MAX_RUN);
    CHECK_EQ(x->struct_size, sizeof *x);
    if (code(x->depth, x->flags) != want)
        TEST_FAIL("offset %" PRIu64 ": depth %u flags %#x, want %u %#x", off,
                  x->depth, x->flags, want >> 4, want & 15u);
    CHECK(x->layer == layer_at(top, x->depth));
    for (uint64_t i = 1; i < x->length; i++)
        if (m->expect[off + i] != want)
            TEST_FAIL("run [%" PRIu64 ", +%" PRIu64 ") changes at %" PRIu64,
                      off, x->length, off + i);
    CHECK_OK(qcowkit_pread(top, a, n, off));
    if (!(x->flags & ALLOC) || (x->flags & ZERO)) {
        CHECK_ZERO(a, n);
    } else {
        CHECK_OK(qcowkit_pread(x->layer, b, n, off));
        CHECK_MEM_EQ(a, b, n);
    }
    if (x->flags & HOST) {
        if (x->depth == 2)
            CHECK_EQ_U64(x->host_offset, off);
        check_host(x, files[x->depth], a, n);
    }
    free(a);
    free(b);
}

static void build_chain(struct model *m, char *files[3], uint64_t seed)
{
    struct test_rng r;

    test_rng_seed(&r, seed);
    files[0] = test_path(g_dir, "top.qcow");
    files[1] = test_path(g_dir, "mid.qcow");
    files[2] = test_path(g_dir, "base.raw");
    make_base(files[2]);
    test_create_file(files[1], MID_SIZE, MID_CS, "base.raw");
    test_create_file(files[0], TOP_SIZE, TOP_CS, "mid.qcow");
    fill_mid(files[1], m, &r);
    fill_top(files[0], m, &r);
    m->base_hole = test_xmalloc(BASE_SIZE);
    find_holes(files[2], m->base_hole);
    m->expect = test_xmalloc(TOP_SIZE);
    for (uint64_t b = 0; b < TOP_SIZE; b++)
        m->expect[b] = expect_at(m, b);
}

/* Whole walks from aligned and odd starts, then random ranges. */
static void test_model(void)
{
    static struct model m;
    char *files[3];
    struct qcowkit_image *top;
    struct test_rng r;
    uint64_t runs = 0, seed = test_env_u64("QCOWKIT_SEED", 10);

    printf("model chain, seed %" PRIu64 "\n", seed);
    build_chain(&m, files, seed);
    top = test_open_file(files[0], QCOWKIT_OPEN_RDONLY);
    for (uint64_t start = 0; start < 700; start += 333) {
        for (uint64_t off = start; off < TOP_SIZE; runs++) {
            struct qcowkit_chain_extent x =
                chain_status(top, off, TOP_SIZE - off);
            check_run(top, &m, &x, off, TOP_SIZE - off, files);
            off += x.length;
        }
    }
    test_rng_seed(&r, seed + 1);
    for (int i = 0; i < 3000; i++) {
        uint64_t off = test_rng_below(&r, TOP_SIZE);
        uint64_t n = 1 + test_rng_below(&r, i % 2 ? 4096 : TOP_SIZE - off);
        struct qcowkit_chain_extent x;
        if (n > TOP_SIZE - off)
            n = TOP_SIZE - off;
        x = chain_status(top, off, n);
        check_run(top, &m, &x, off, n, files);
    }
    printf("  %" PRIu64 " runs in 3 whole walks\n", runs);
    if (!memchr(m.base_hole, 1, BASE_SIZE))
        printf("  (the file system reports no holes: raw holes untested)\n");
    CHECK_OK(qcowkit_close(top));
    free(m.base_hole);
    free(m.expect);
    for (int i = 0; i < 3; i++)
        free(files[i]);
}

/* Fixed points of a fresh chain: short backing files and the range rules. */
static void test_edges(void)
{
    char *base = test_path(g_dir, "e-base.raw");
    char *mid = test_path(g_dir, "e-mid.qcow");
    char *top = test_path(g_dir, "e-top.qcow");
    uint8_t zeros[4096] = {0};
    struct qcowkit_chain_extent x;
    struct qcowkit_image *img;

    test_write_file(base, zeros, sizeof zeros); /* 4 KiB of data, no hole */
    test_create_file(mid, 3 * 4096, 4096, "e-base.raw");
    test_create_file(top, 5 * 4096, 0, "e-mid.qcow");
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);

    x = chain_status(img, 0, 5 * 4096);
    CHECK(x.flags == (ALLOC | HOST) && x.depth == 2 && x.length == 4096);
    x = chain_status(img, 100, 1);
    CHECK(x.depth == 2 && x.length == 1 && x.host_offset == 100);
    /* Past the base: zeros, answered by mid, up to mid's end. */
    x = chain_status(img, 4096, 5 * 4096 - 4096);
    CHECK(x.flags == ZERO && x.depth == 1 && x.length == 2 * 4096);
    CHECK(x.layer == qcowkit_backing(img));
    x = chain_status(img, 4095, 2);
    CHECK(x.depth == 2 && x.length == 1);
    /* Past mid: answered by top, to the end. */
    x = chain_status(img, 3 * 4096 + 7, 2 * 4096 - 7);
    CHECK(x.flags == ZERO && x.depth == 0 && x.length == 2 * 4096 - 7);
    x = chain_status(img, 5 * 4096 - 1, 1);
    CHECK(x.flags == ZERO && x.depth == 0 && x.length == 1);

    /* The range must be inside the image and non-empty. */
    qcowkit_chain_extent_init(&x);
    CHECK_ERR(qcowkit_block_status_chain(img, 5 * 4096, 1, &x), -EINVAL);
    CHECK_MSG_HAS("outside the image");
    CHECK_ERR(qcowkit_block_status_chain(img, 5 * 4096 + 1, 1, &x), -EINVAL);
    CHECK_ERR(qcowkit_block_status_chain(img, 0, 0, &x), -EINVAL);
    CHECK_ERR(qcowkit_block_status_chain(img, 4096, 0, &x), -EINVAL);
    CHECK_ERR(qcowkit_block_status_chain(img, 1, 5 * 4096, &x), -EINVAL);
    CHECK_ERR(qcowkit_block_status_chain(img, UINT64_MAX, 2, &x), -EINVAL);
    CHECK_ERR(qcowkit_block_status_chain(img, 1, UINT64_MAX, &x), -EINVAL);
    CHECK_OK(qcowkit_close(img));

    /* Without the chain, the unallocated top reads zeros itself. */
    img = test_open_file(top, QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING);
    x = chain_status(img, 10, 5 * 4096 - 10);
    CHECK(x.flags == ZERO && x.depth == 0 && x.length == 5 * 4096 - 10);
    CHECK(x.layer == img);
    CHECK_OK(qcowkit_close(img));
    free(base);
    free(mid);
    free(top);
}

/* struct_size: too small is refused, a newer caller's tail is zeroed. */
static void test_struct_size(void)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(1 << 20, 0, NULL, "m", &io);
    struct {
        struct qcowkit_chain_extent x;
        uint8_t newer[16];
    } big;

    memset(&big, 0xa5, sizeof big);
    big.x.struct_size = sizeof big;
    CHECK_OK(qcowkit_block_status_chain(img, 0, 1 << 20, &big.x));
    CHECK_EQ(big.x.struct_size, sizeof big.x);
    CHECK(test_is_zero(big.newer, sizeof big.newer));
    CHECK(big.x.flags == ZERO && big.x.depth == 0 && big.x.length == 1 << 20);
    CHECK_EQ_U64(big.x.host_offset, 0);

    big.x.struct_size = offsetof(struct qcowkit_chain_extent, layer);
    CHECK_ERR(qcowkit_block_status_chain(img, 0, 1, &big.x), -EINVAL);
    CHECK_MSG_HAS("struct_size");
    CHECK_ERR(qcowkit_block_status_chain(img, 0, 1, NULL), -EINVAL);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

/*
 * Runs of data stop at QCOWKIT_CHAIN_MAX_RUN, wherever they start; a run
 * that reads as zeros through the chain goes on to the data.
 */
static void test_max_run(void)
{
    const uint64_t size = UINT64_C(3) << 30;
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(size, 65536, NULL, "big", &io);
    struct qcowkit_chain_extent x;
    uint64_t off = 0, runs = 0;

    write_at(img, size - 65536, 1, 4); /* one cluster of data at the end */
    while (off < size) {
        x = chain_status(img, off, size - off);
        off += x.length;
        runs++;
    }
    CHECK_EQ(runs, 2); /* 3 GiB - 64 KiB of zeros, 64 KiB of data */
    x = chain_status(img, 12345, size - 12345);
    CHECK(x.flags == ZERO && x.length == size - 65536 - 12345);
    x = chain_status(img, size - 65536 + 3, 65533);
    CHECK(x.flags == (ALLOC | HOST) && x.length == 65533);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
}

/* An encrypted chain opened without its key: status works, reads do not. */
static void test_encrypted(void)
{
    static const uint8_t key[16] = "chain-status-key";
    char *base = test_path(g_dir, "k-base.qcow");
    char *top = test_path(g_dir, "k-top.qcow");
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_chain_extent x;
    struct qcowkit_image *img;
    uint8_t buf[512];

    test_create_opts(&co, 1 << 20, 4096, NULL);
    co.key = key;
    co.key_len = sizeof key;
    CHECK_OK(qcowkit_create(base, &co, QCOWKIT_IO_TRUNC));
    test_create_opts(&co, 1 << 20, 512, "k-base.qcow");
    co.key = key;
    co.key_len = sizeof key;
    CHECK_OK(qcowkit_create(top, &co, QCOWKIT_IO_TRUNC));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_BACKING;
    oo.key = key;
    oo.key_len = sizeof key;
    CHECK_OK(qcowkit_open(base, &oo, &img));
    write_at(img, 8192, 4096, 5);
    CHECK_OK(qcowkit_close(img));
    CHECK_OK(qcowkit_open(top, &oo, &img));
    write_at(img, 0, 512, 6);
    CHECK_OK(qcowkit_close(img));

    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
    x = chain_status(img, 0, 1 << 20);
    CHECK(x.flags == ALLOC && x.depth == 0 && x.length == 512);
    x = chain_status(img, 512, (1 << 20) - 512);
    CHECK(x.flags == ZERO && x.depth == 1 && x.length == 8192 - 512);
    x = chain_status(img, 8192 + 1, 1 << 19);
    CHECK(x.flags == ALLOC && x.depth == 1 && x.length == 4095);
    CHECK_ERR(qcowkit_pread(img, buf, sizeof buf, 8192), -EACCES);
    CHECK_OK(qcowkit_close(img));
    free(base);
    free(top);
}

/* A corrupt entry in the backing file fails the call that reaches it. */
static void test_corrupt_backing(void)
{
    char *base = test_path(g_dir, "c-base.qcow");
    char *top = test_path(g_dir, "c-top.qcow");
    struct qcowkit_chain_extent x;
    struct qcowkit_image *img;
    uint64_t pos;
    uint8_t *bytes;
    size_t len;

    test_create_file(base, 1 << 20, 4096, NULL);
    img = test_open_file(base, QCOWKIT_OPEN_RDWR);
    write_at(img, 65536, 4096, 7);
    CHECK_OK(qcowkit_close(img));
    bytes = test_read_file(base, &len);
    pos = test_l2_entry_pos(bytes, len, 65536, NULL);
    CHECK(pos != 0);
    test_put_be64(bytes + pos, UINT64_C(1) << 40); /* far past the file */
    test_write_file(base, bytes, len);
    free(bytes);
    test_create_file(top, 1 << 20, 0, "c-base.qcow");

    img = test_open_file(top, QCOWKIT_OPEN_RDONLY);
    x = chain_status(img, 0, 1 << 20);
    CHECK(x.flags == ZERO && x.depth == 1 && x.length == 65536);
    qcowkit_chain_extent_init(&x);
    CHECK_ERR(qcowkit_block_status_chain(img, 65536, 4096, &x), -EIO);
    CHECK_MSG_HAS("c-base.qcow");
    CHECK_OK(qcowkit_close(img));
    free(base);
    free(top);
}

int main(void)
{
    test_init(240);
    g_dir = test_mkdtemp();
    test_model();
    test_edges();
    test_struct_size();
    test_max_run();
    test_encrypted();
    test_corrupt_backing();
    printf("chain-status: all passed\n");
    free(g_dir);
    return 0;
}
