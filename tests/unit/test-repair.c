/*
 * test-repair: qcowkit_check's repair must never destroy good data.
 *
 * Fixed cases first (issue 8 and bug 4), then a seeded property test
 * (tests/harness/repair-prop.h): valid images with random normal and
 * compressed writes, damaged in 1-3 random ways on the raw bytes, then
 * repaired; whatever no damage touched must read as written, of every
 * aliasing pair one side must survive, and the repaired image must be
 * clean for the check, the layout checker and new writes.
 *
 *   test-repair [SEED]            QCOWKIT_SEED, QCOWKIT_ITERATIONS
 *   QCOWKIT_REPAIR_ONLY=a|b|c|prop runs one part only
 * A failing iteration prints the command that replays it alone.
 */
#include "test.h"

#include "repair-prop.h"

static const char *g_part = "?";
static uint64_t g_seed;

static void on_fail(void)
{
    if (strcmp(g_part, "prop") == 0)
        fprintf(stderr,
                "    property iteration with seed %" PRIu64
                "; replay it alone with QCOWKIT_REPAIR_ONLY=prop "
                "QCOWKIT_SEED=%" PRIu64 " QCOWKIT_ITERATIONS=1 test-repair\n",
                g_seed, g_seed);
    else
        fprintf(stderr,
                "    fixed case %s; rerun with QCOWKIT_REPAIR_ONLY=%s\n",
                g_part, g_part);
    fflush(stderr);
    exit(1);
}

static void on_test_fail(void)
{
    if (rp_current)
        rp_print_case(rp_current);
    on_fail();
}

static uint64_t rng_below(void *opaque, uint64_t n)
{
    return test_rng_below(opaque, n);
}

static int wanted(const char *part)
{
    const char *only = getenv("QCOWKIT_REPAIR_ONLY");

    return !only || !*only || strcmp(only, part) == 0;
}

/* Every guest cluster written: a third compressed, the rest random. */
static void build_full(struct rp_case *c, unsigned cluster_bits,
                       unsigned l2_bits, uint64_t size, int l1_at_512)
{
    struct qcowkit_io *io;
    struct qcowkit_image *img;

    rp_set_geometry(c, cluster_bits, l2_bits, size, l1_at_512, NULL);
    rp_alloc_buffers(c);
    io = rp_empty_image(c);
    img = rp_open(io);
    for (uint64_t g = 0; g < c->clusters; g++) {
        size_t n = rp_cluster_len(c, g);
        if (g % 3 == 1) {
            rp_compressible(c->model + g * c->cs, n, g);
            CHECK_OK(qcowkit_pwrite_compressed(img, c->model + g * c->cs, n,
                                               g * c->cs));
        } else {
            rp_fill(c->model + g * c->cs, n, g + 1);
            CHECK_OK(qcowkit_pwrite(img, c->model + g * c->cs, n, g * c->cs));
        }
    }
    rp_finish_build(c, io, img);
}

/* Issue 8 (a): L1[1] := L1[0].  The table's first owner keeps its data. */
static void case_shared_table(struct test_rng *rng)
{
    struct rp_source src = {rng_below, rng};
    struct rp_case c;

    g_part = "a";
    memset(&c, 0, sizeof c);
    rp_current = &c;
    build_full(&c, 9, 6, 4 * (UINT64_C(512) << 6), 0);
    CHECK(rp_l1_alias(&c, 1, 0));
    rp_verify(&c, &src);
    /* rp_verify checked one side; issue 8 says which one it must be. */
    CHECK_MEM_EQ(c.after, c.model, (size_t)(c.cs << c.l2_bits));
    rp_current = NULL;
    rp_case_free(&c);
    printf("test-repair: case a (L1[1] := L1[0]) ok\n");
}

/* Issue 8 (b): an L1 entry pointing at the L1 table itself. */
static void case_table_is_l1(struct test_rng *rng)
{
    struct rp_source src = {rng_below, rng};
    struct rp_case c;

    g_part = "b";
    memset(&c, 0, sizeof c);
    rp_current = &c;
    /* L1 at 512, so that the bad entry is aligned like a real table. */
    build_full(&c, 9, 6, 4 * (UINT64_C(512) << 6), 1);
    CHECK(rp_l1_set(&c, RP_L1_META, 2, c.l1_offset, "the L1 table"));
    rp_verify(&c, &src);
    rp_current = NULL;
    rp_case_free(&c);
    printf("test-repair: case b (L1[2] := the L1 table) ok\n");
}

static int g_soft_failures;

/* A failed expectation of a fixed case: reported, and the case goes on. */
#define EXPECT(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            g_soft_failures++;                                                 \
        }                                                                      \
    } while (0)

/*
 * Bug 4: with 4 KiB clusters an L2 entry of 0x3200 (sector-aligned, not
 * cluster-aligned, running past the end of the file) must not be trusted,
 * or the next allocation overlaps it.
 */
static void case_unaligned_entry(void)
{
    const uint64_t cs = 4096, size = 256 << 10;
    struct qcowkit_io *io;
    struct qcowkit_image *img = test_mem_image(size, cs, NULL, "bug4", &io);
    struct qcowkit_check_report r;
    uint8_t *data = test_xmalloc(2 * cs), *before, *after, *bytes;
    int rc_before[64], rc_after[64];
    uint64_t pos;
    size_t len;

    g_part = "c";
    test_rng_fill(&(struct test_rng){42}, data, 2 * cs);
    CHECK_OK(qcowkit_pwrite(img, data, 2 * cs, 0));
    CHECK_OK(qcowkit_close(img));
    bytes = test_mem_bytes(io, &len);
    qcowkit_io_close(io);
    /* Header and L1, the L2 table at 4 KiB, data at 8 and 12 KiB. */
    CHECK_EQ_U64(len, 0x4000);
    pos = test_l2_entry_pos(bytes, len, cs, NULL);
    CHECK(pos != 0);
    CHECK_EQ_U64(test_get_be64(bytes + pos), 0x3000);
    test_put_be64(bytes + pos, 0x3200);
    img = test_mem_image_bytes(bytes, len, &io);

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK_OK(qcowkit_check(img, 0, NULL, NULL, &r));
    EXPECT(r.corruptions >= 1,
           "check of an entry 0x3200 with 4 KiB clusters found %" PRIu64
           " corruptions, want at least 1",
           r.corruptions);
    EXPECT(qcowkit_pread(img, data, cs, cs) == -EIO,
           "reading guest cluster 1 (entry 0x3200) did not fail with -EIO");

    before = test_xcalloc(size);
    after = test_xcalloc(size);
    for (uint64_t g = 0; g < size / cs; g++)
        rc_before[g] = qcowkit_pread(img, before + g * cs, cs, g * cs);
    test_rng_fill(&(struct test_rng){7}, data, cs);
    CHECK_OK(qcowkit_pwrite(img, data, cs, 5 * cs));
    CHECK_OK(qcowkit_flush(img));
    for (uint64_t g = 0; g < size / cs; g++)
        rc_after[g] = qcowkit_pread(img, after + g * cs, cs, g * cs);
    EXPECT(rc_after[5] == 0 && memcmp(after + 5 * cs, data, cs) == 0,
           "guest cluster 5 does not read as just written");
    for (uint64_t g = 0; g < size / cs; g++)
        EXPECT(g == 5 || (rc_before[g] == rc_after[g] &&
                          memcmp(before + g * cs, after + g * cs, cs) == 0),
               "writing guest cluster 5 changed what guest cluster %" PRIu64
               " reads (rc %d -> %d)",
               g, rc_before[g], rc_after[g]);
    CHECK_OK(qcowkit_close(img));
    qcowkit_io_close(io);
    free(bytes);
    free(before);
    free(after);
    free(data);
    if (g_soft_failures)
        TEST_FAIL("case c (bug 4): %d expectation(s) failed", g_soft_failures);
    printf("test-repair: case c (L2 entry 0x3200, 4 KiB clusters) ok\n");
}

int main(int argc, char **argv)
{
    uint64_t base, iterations;
    struct test_rng rng;

    test_init((unsigned)test_env_u64("QCOWKIT_TIMEOUT", 280));
    base = test_env_u64("QCOWKIT_SEED", 20261129);
    if (argc > 1)
        base = strtoull(argv[1], NULL, 0);
    iterations = test_env_u64("QCOWKIT_ITERATIONS", 1500);
    test_fail_hook = on_test_fail;
    rp_fail_hook = on_fail;
    test_rng_seed(&rng, base);
    if (wanted("a"))
        case_shared_table(&rng);
    if (wanted("b"))
        case_table_is_l1(&rng);
    if (wanted("c"))
        case_unaligned_entry();
    if (!wanted("prop"))
        return 0;
    printf("test-repair: seed %" PRIu64 ", %" PRIu64 " iterations\n", base,
           iterations);
    g_part = "prop";
    for (uint64_t i = 0; i < iterations; i++) {
        struct rp_source src = {rng_below, &rng};
        g_seed = base + i;
        test_rng_seed(&rng, g_seed);
        rp_run(&src);
    }
    printf("test-repair: ok\n");
    return 0;
}
