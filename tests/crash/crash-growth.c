/*
 * crash-growth: sparse writes far apart over a large virtual disk, so
 * that nearly every write needs a new L2 table and L1 entry between
 * flushes, some straddling the boundary of two L2 tables, with the power
 * lost at each write in turn.
 */
#include <stdlib.h>
#include <string.h>

#include "crash-driver.h"

struct params {
    unsigned ops;
    size_t max_len;
    unsigned flush_one_in;
};

static void workload(struct crash_run *r, void *arg)
{
    const struct params *p = arg;
    struct crash_rng g;
    uint64_t size = crash_virtual_size(r);
    uint32_t cs = crash_cluster_size(r);
    uint64_t l2_span = (uint64_t)cs << crash_l2_bits(r); /* one L2 maps */
    uint8_t *buf = malloc(p->max_len);

    CRASH_CHECK(buf != NULL);
    crash_rng_seed(&g, crash_seed(r));
    for (unsigned i = 0; i < p->ops; i++) {
        size_t len = (size_t)crash_rng_range(&g, 1, p->max_len);
        uint64_t off;

        if (crash_rng_below(&g, 4) == 0) {
            /* Straddle the boundary between two L2 tables. */
            uint64_t b = crash_rng_range(&g, 1, size / l2_span - 1) * l2_span;
            if (len < 2)
                len = 2;
            off = b - crash_rng_range(&g, 1, len - 1);
        } else {
            off = crash_rng_below(&g, size - len + 1);
        }
        crash_rng_fill(&g, buf, len);
        crash_pwrite(r, buf, len, off);
        if (crash_rng_below(&g, 4) == 0)
            crash_pread_check(r, len, off);
        if (crash_rng_below(&g, p->flush_one_in) == 0)
            crash_flush(r);
    }
    free(buf);
}

int main(int argc, char **argv)
{
    (void)argc;
    crash_begin(argv[0]);

    static const struct {
        const char *name;
        uint64_t seed;
        uint64_t size;
        uint32_t cluster_size;
        uint64_t cache_size;
        struct params p;
    } cases[] = {
        /* 4096 L1 entries of 2 MiB (L2 tables of 512 entries). */
        {"growth-4k-8G", 31, 8ull << 30, 4096, 0, {40, 8192, 5}},
        {"growth-4k-8G-b", 32, 8ull << 30, 4096, 0, {40, 8192, 5}},
        /* 8192 L1 entries of 2 MiB (L2 tables of 4096 entries). */
        {"growth-512-16G", 33, 16ull << 30, 512, 0, {40, 2048, 5}},
        /* 256 L1 entries of 512 MiB (L2 tables of 8192 entries). */
        {"growth-64k-128G", 34, 128ull << 30, 65536, 0, {20, 65536, 4}},
        /* Also with the smallest cache, so tables are evicted. */
        {"growth-4k-8G-evict", 35, 8ull << 30, 4096, 1, {40, 8192, 8}},
        {"growth-512-16G-evict", 36, 16ull << 30, 512, 1, {40, 2048, 8}},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qcowkit_create_opts co;
        struct crash_spec s;
        size_t len;
        uint8_t *image;

        qcowkit_create_opts_init(&co);
        co.size = cases[i].size;
        co.cluster_size = cases[i].cluster_size;
        image = crash_make_image(&co, &len);

        memset(&s, 0, sizeof s);
        s.name = cases[i].name;
        s.seed = cases[i].seed;
        s.image = image;
        s.image_len = len;
        s.cache_size = cases[i].cache_size;
        s.seeds = 2;
        s.workload = workload;
        s.arg = (void *)&cases[i].p;
        crash_run_spec(&s);
        free(image);
    }
    crash_end();
}
