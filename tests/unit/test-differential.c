/*
 * test-differential: random reads, writes, compressed writes, zero
 * writes, flushes, block status queries, make_empty, resize (grow,
 * shrink, grow again: the grown range reads zeros, never the backing
 * file) and close+reopen through the library, checked against a plain
 * buffer model.
 *
 * Fixed seed by default.  QCOWKIT_SEED=n and QCOWKIT_ITERATIONS=n run
 * other seeds and longer sequences; the seed is printed on failure.
 */
#include "test.h"

#include "layout.h"

struct config {
    const char *label;
    uint32_t cluster_size;
    unsigned l2_bits; /* 0: let qcowkit_create choose */
    uint64_t size;
    /* 0 none, 1 raw, 2 qcow (shorter than the overlay), 3 raw, twice as long */
    int backing;
    uint64_t cache_size; /* open option; 1 = as small as the library allows */
    int raw;             /* a raw image instead of qcow */
};

static const struct config configs[] = {
    {"512B clusters", 512, 0, (1 << 20) + 1536, 0, 0, 0},
    {"512B clusters, l2_bits 6, tiny L2 cache", 512, 6, (1 << 20) + 1536, 0, 1,
     0},
    {"4K clusters", 4096, 0, 4 << 20, 0, 0, 0},
    {"64K clusters", 65536, 0, (3 << 20) + 1536, 0, 0, 0},
    {"16K clusters, l2_bits 6", 16384, 6, (3 << 20) + 512, 0, 0, 0},
    {"512B clusters, l2_bits 13", 512, 13, 2 << 20, 0, 0, 0},
    {"default on raw backing", 0, 0, 1 << 20, 1, 0, 0},
    {"4K on short qcow backing", 4096, 0, (2 << 20) + 512, 2, 0, 0},
    {"2K clusters, l2_bits 6, raw backing", 2048, 6, (1 << 20) + 512, 1, 0, 0},
    {"1K clusters, l2_bits 7, tiny L2 cache, qcow backing", 1024, 7,
     (1 << 20) + 512, 2, 1, 0},
    {"4K overlay, half of its raw backing", 4096, 0, (512 << 10) + 1536, 3, 0,
     0},
    {"raw image", 0, 0, (1 << 20) + 77, 0, 0, 1},
};
static uint64_t g_seed;
static const char *g_label;
static uint64_t g_step;

#define RING 24
static char g_ring[RING][96];
static uint64_t g_ring_n;

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(g_ring[g_ring_n % RING], sizeof(g_ring[0]), fmt, ap);
    va_end(ap);
    g_ring_n++;
}

static void on_fail(void)
{
    fprintf(stderr,
            "    config \"%s\", step %" PRIu64 "; rerun with "
            "QCOWKIT_SEED=%" PRIu64 "\n    last operations:\n",
            g_label ? g_label : "?", g_step, g_seed);
    for (uint64_t i = g_ring_n > RING ? g_ring_n - RING : 0; i < g_ring_n; i++)
        fprintf(stderr, "      %s\n", g_ring[i % RING]);
}

struct state {
    const struct config *cfg;
    char *dir;
    char *name;
    struct qcowkit_io *io;
    struct qcowkit_image *img;
    uint64_t size;    /* virtual size */
    uint64_t max;     /* the largest size resize may give */
    uint32_t cs;      /* cluster size */
    uint8_t *model;   /* guest contents (max bytes) */
    uint8_t *backing; /* what the backing chain reads as (max bytes) */
    uint8_t *buf;
    uint8_t *rbuf;
};

#define MAX_IO (384 * 1024)

static struct qcowkit_image *open_image(struct state *s)
{
    return test_open_io_ex(s->io, s->name, QCOWKIT_OPEN_RDWR,
                           s->cfg->raw ? QCOWKIT_FORMAT_RAW
                                       : QCOWKIT_FORMAT_QCOW,
                           s->cfg->cache_size);
}

static void reopen(struct state *s)
{
    CHECK_OK(qcowkit_close(s->img));
    s->img = open_image(s);
}

static void verify_range(struct state *s, uint64_t off, size_t n)
{
    memset(s->rbuf, 0xa5, n);
    CHECK_OK(qcowkit_pread(s->img, s->rbuf, n, off));
    if (memcmp(s->rbuf, s->model + off, n) != 0) {
        size_t d = 0;
        test_memdiff_(s->rbuf, s->model + off, n, &d);
        TEST_FAIL("read [%" PRIu64 ", +%zu): guest offset %" PRIu64
                  " reads 0x%02x, model has 0x%02x",
                  off, n, off + d, s->rbuf[d], s->model[off + d]);
    }
}

static void verify_from(struct state *s, uint64_t start)
{
    for (uint64_t off = start; off < s->size; off += MAX_IO) {
        size_t n = (size_t)(s->size - off < MAX_IO ? s->size - off : MAX_IO);
        verify_range(s, off, n);
    }
}

static void verify_all(struct state *s)
{
    verify_from(s, 0);
}

static void setup(struct state *s, const struct config *cfg,
                  struct test_rng *rng)
{
    const char *bname = NULL;

    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->size = cfg->size;
    s->max = (2 * cfg->size + 511) / 512 * 512;
    s->model = test_xcalloc(s->max);
    s->backing = test_xcalloc(s->max);
    s->buf = test_xmalloc(MAX_IO);
    s->rbuf = test_xmalloc(MAX_IO);
    s->dir = test_mkdtemp();
    s->name = test_path(s->dir, "overlay.qcow");

    if (cfg->backing == 1 || cfg->backing == 3) {
        char *p = test_path(s->dir, "base.raw");
        uint64_t blen = cfg->backing == 3 ? s->max : cfg->size;
        test_rng_fill(rng, s->backing, blen);
        /* Some zero runs in the backing file too. */
        memset(s->backing + blen / 3, 0, blen / 10);
        test_write_file(p, s->backing, blen);
        free(p);
        bname = "base.raw";
    } else if (cfg->backing == 2) {
        char *p = test_path(s->dir, "base.qcow");
        uint64_t bsize = cfg->size / 2 + 512;
        struct qcowkit_image *b;
        test_create_file(p, bsize, 512, NULL);
        b = test_open_file(p, QCOWKIT_OPEN_RDWR);
        for (uint64_t off = 0; off < bsize; off += 3 * 65536) {
            size_t n = (size_t)(bsize - off < 100000 ? bsize - off : 100000);
            test_rng_fill(rng, s->backing + off, n);
            CHECK_OK(qcowkit_pwrite(b, s->backing + off, n, off));
        }
        CHECK_OK(qcowkit_close(b));
        free(p);
        bname = "base.qcow";
    }
    memcpy(s->model, s->backing, cfg->size);

    s->io = test_mem_io(NULL, 0);
    if (cfg->raw) {
        struct qcowkit_create_opts co;
        qcowkit_create_opts_init(&co);
        co.format = QCOWKIT_FORMAT_RAW;
        co.size = cfg->size;
        CHECK_OK(qcowkit_create_io(s->io, s->name, &co));
    } else if (cfg->l2_bits) {
        struct test_header h;
        size_t len;
        unsigned cb = 0;
        uint8_t *bytes;
        while ((1u << cb) < cfg->cluster_size)
            cb++;
        test_header_init(&h, cfg->size, cb, cfg->l2_bits);
        bytes = test_craft_image(&h, bname, 0, &len);
        CHECK_OK(qcowkit_io_pwrite(s->io, bytes, len, 0));
        free(bytes);
    } else {
        struct qcowkit_create_opts co;
        test_create_opts(&co, cfg->size, cfg->cluster_size, bname);
        CHECK_OK(qcowkit_create_io(s->io, s->name, &co));
    }
    s->img = open_image(s);
    {
        struct qcowkit_info info = test_info(s->img);
        CHECK_EQ_U64(info.virtual_size, cfg->size);
        s->cs = info.cluster_size;
        if (cfg->raw) {
            CHECK_EQ(info.format, QCOWKIT_FORMAT_RAW);
            CHECK_EQ(s->cs, 0);
            s->cs = 512; /* granularity of the random ranges */
        } else if (cfg->cluster_size) {
            CHECK_EQ(s->cs, cfg->cluster_size);
        }
    }
}

static void teardown(struct state *s)
{
    CHECK_OK(qcowkit_close(s->img));
    qcowkit_io_close(s->io);
    test_rm_rf(s->dir);
    free(s->dir);
    free(s->name);
    free(s->model);
    free(s->backing);
    free(s->buf);
    free(s->rbuf);
}

/*
 * The flushed bytes must have a clean layout (no overlap, nothing
 * misplaced).  Flushing is what the test's flush operation does anyway;
 * between those, every 16th step also flushes, so that runs of unflushed
 * operations stay common.
 */
static void check_layout(struct state *s)
{
    struct layout_result lr;

    if (s->cfg->raw)
        return;
    CHECK_OK(qcowkit_flush(s->img));
    if (layout_check_io(s->io, &lr))
        TEST_FAIL("layout: %" PRIu64 " problem(s), first: %s", lr.problems,
                  lr.first);
}

/* A random range: mostly small, sometimes large, often near clusters. */
static void pick_range(struct state *s, struct test_rng *rng, uint64_t *off,
                       size_t *n)
{
    uint64_t r = test_rng_below(rng, 100);
    size_t len;

    if (r < 40)
        len = (size_t)test_rng_range(rng, 1, 64);
    else if (r < 75)
        len = (size_t)test_rng_range(rng, 1, 2 * s->cs);
    else if (r < 95)
        len = (size_t)test_rng_range(rng, 1, 8 * (uint64_t)s->cs);
    else
        len = (size_t)test_rng_range(rng, 1, MAX_IO);
    if (len > MAX_IO)
        len = MAX_IO;
    if (len > s->size)
        len = (size_t)s->size;
    *off = test_rng_below(rng, s->size - len + 1);
    if (test_rng_below(rng, 3) == 0) {
        /* Snap near a cluster boundary. */
        uint64_t c = *off / s->cs * s->cs;
        int64_t jitter = (int64_t)test_rng_below(rng, 5) - 2;
        if ((int64_t)c + jitter >= 0 && c + jitter + len <= s->size)
            *off = c + (uint64_t)jitter;
    }
    *n = len;
}

/*
 * Shrink or (more often) grow to a random multiple of 512 bytes.  What
 * a grow adds reads as zeros, whatever the backing chain holds there.
 */
/* Leaked clusters; qcowkit_check must find no corruption. */
static uint64_t count_leaks(struct state *s)
{
    struct qcowkit_check_report r = {.struct_size = sizeof r};

    if (s->cfg->raw)
        return 0;
    CHECK_OK(qcowkit_check(s->img, 0, NULL, NULL, &r));
    CHECK_EQ(r.corruptions, 0);
    return r.leaks;
}

static void do_resize(struct state *s, struct test_rng *rng)
{
    uint64_t old = s->size, size, leaks = count_leaks(s);

    if (test_rng_below(rng, 4) == 0)
        size = test_rng_range(rng, 1, old / 512) * 512;
    else
        size = test_rng_range(rng, (old + 511) / 512, s->max / 512) * 512;
    if (test_rng_below(rng, 3) == 0 && size / s->cs * s->cs >= 512)
        size = size / s->cs * s->cs; /* cluster-aligned */
    note("resize(%" PRIu64 " -> %" PRIu64 ")", old, size);
    CHECK_OK(qcowkit_resize(s->img, size));
    CHECK_EQ_U64(test_info(s->img).virtual_size, size);
    s->size = size;
    if (size > old) {
        memset(s->model + old, 0, size - old);
        verify_from(s, old & ~(uint64_t)(s->cs - 1));
    }
    /*
     * Other writes leak (compressed overwrites); resize adds none, but a
     * moved L1 table no longer hides such a leak sharing its cluster.
     */
    CHECK(count_leaks(s) <= leaks + 1);
}

static void run_config(const struct config *cfg, uint64_t iterations)
{
    struct state s;
    struct test_rng rng;

    g_label = cfg->label;
    g_step = 0;
    g_ring_n = 0;
    test_rng_seed(&rng, g_seed ^ (uint64_t)(cfg - configs) * 0x9e37);
    setup(&s, cfg, &rng);
    verify_all(&s);

    for (g_step = 0; g_step < iterations; g_step++) {
        uint64_t op = test_rng_below(&rng, 1000);
        uint64_t off;
        size_t n;

        if (g_step % 16 == 15)
            check_layout(&s);

        if (op < 330) { /* write */
            pick_range(&s, &rng, &off, &n);
            if (test_rng_below(&rng, 4) == 0)
                test_compressible(s.buf, n, (uint32_t)g_step);
            else
                test_rng_fill(&rng, s.buf, n);
            note("pwrite(off=%" PRIu64 ", n=%zu)", off, n);
            CHECK_OK(qcowkit_pwrite(s.img, s.buf, n, off));
            memcpy(s.model + off, s.buf, n);
        } else if (op < 630) { /* read */
            pick_range(&s, &rng, &off, &n);
            note("pread(off=%" PRIu64 ", n=%zu)", off, n);
            verify_range(&s, off, n);
        } else if (op < 720) { /* zeroes */
            pick_range(&s, &rng, &off, &n);
            note("pwrite_zeroes(off=%" PRIu64 ", n=%zu)", off, n);
            CHECK_OK(qcowkit_pwrite_zeroes(s.img, n, off));
            memset(s.model + off, 0, n);
        } else if (op < 830) { /* compressed */
            uint64_t clusters = (s.size + s.cs - 1) / s.cs;
            uint64_t k = test_rng_range(&rng, 1, 3);
            uint64_t c = test_rng_below(&rng, clusters);
            if (test_rng_below(&rng, 8) == 0)
                c = clusters - 1; /* the (maybe partial) last cluster */
            if (c + k > clusters)
                k = clusters - c;
            off = c * s.cs;
            n = (size_t)(k * s.cs);
            if (off + n > s.size)
                n = (size_t)(s.size - off);
            if (n > MAX_IO) {
                n = MAX_IO / s.cs * s.cs;
                if (n == 0)
                    continue;
            }
            switch (test_rng_below(&rng, 3)) {
            case 0:
                test_compressible(s.buf, n, (uint32_t)g_step);
                break;
            case 1:
                test_rng_fill(&rng, s.buf, n);
                break;
            default:
                memset(s.buf, 0, n);
                break;
            }
            note("pwrite_compressed(off=%" PRIu64 ", n=%zu)", off, n);
            CHECK_OK(qcowkit_pwrite_compressed(s.img, s.buf, n, off));
            memcpy(s.model + off, s.buf, n);
        } else if (op < 880) { /* flush */
            note("flush");
            CHECK_OK(qcowkit_flush(s.img));
            check_layout(&s);
        } else if (op < 910) { /* close + reopen */
            note("close+reopen");
            reopen(&s);
        } else if (op < 980) { /* block status */
            struct qcowkit_extent ext;
            pick_range(&s, &rng, &off, &n);
            note("block_status(off=%" PRIu64 ", n=%zu)", off, n);
            memset(&ext, 0xff, sizeof(ext));
            CHECK_OK(qcowkit_block_status(s.img, off, n, &ext));
            CHECK_EQ_U64(ext.offset, off);
            CHECK(ext.length > 0 && ext.length <= n);
            if (ext.flags & QCOWKIT_EXTENT_COMPRESSED)
                CHECK(ext.flags & QCOWKIT_EXTENT_ALLOCATED);
            if (cfg->raw) {
                CHECK_EQ(ext.flags & QCOWKIT_EXTENT_ALLOCATED,
                         QCOWKIT_EXTENT_ALLOCATED);
                CHECK_EQ_U64(ext.length, n);
                if (ext.flags & QCOWKIT_EXTENT_HOST_OFFSET)
                    CHECK_EQ_U64(ext.host_offset, off);
                continue;
            }
            if (!(ext.flags & QCOWKIT_EXTENT_ALLOCATED)) {
                /* Unallocated ranges read from the backing file. */
                if (memcmp(s.model + off, s.backing + off,
                           (size_t)ext.length) != 0)
                    TEST_FAIL("block_status says [%" PRIu64 ", +%" PRIu64
                              ") is unallocated, but it was written",
                              off, ext.length);
            }
            /* Extents end on cluster boundaries or at the request end. */
            if (off + ext.length != off + n)
                CHECK_EQ((off + ext.length) % s.cs, 0);
        } else if (op < 995) { /* resize */
            do_resize(&s, &rng);
        } else { /* make_empty */
            if (!cfg->backing || cfg->raw)
                continue;
            note("make_empty");
            CHECK_OK(qcowkit_make_empty(s.img));
            /* It drops the zero clusters of grows too: backing shows. */
            memcpy(s.model, s.backing, s.size);
        }
    }
    g_step = iterations;
    note("final verify");
    verify_all(&s);
    CHECK_OK(qcowkit_flush(s.img));
    reopen(&s);
    note("final verify after reopen");
    verify_all(&s);
    check_layout(&s);
    teardown(&s);
    g_label = NULL;
}

int main(void)
{
    uint64_t iterations;

    test_init((unsigned)test_env_u64("QCOWKIT_TIMEOUT", 600));
    g_seed = test_env_u64("QCOWKIT_SEED", 20240611);
    iterations = test_env_u64("QCOWKIT_ITERATIONS", 1500);
    test_fail_hook = on_fail;
    printf("test-differential: seed %" PRIu64 ", %" PRIu64
           " operations per configuration\n",
           g_seed, iterations);
    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
        run_config(&configs[i], iterations);
    printf("test-differential: ok\n");
    return 0;
}
