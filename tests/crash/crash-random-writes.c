/*
 * crash-random-writes: random unaligned writes (1 byte .. 64 KiB) and a
 * few zero writes (some cases also discard, and write zeros that unmap), with a
 * flush every few calls, the power lost at each write in turn.  One case uses
 * the smallest L2 cache (4 tables) on a larger image, so that evictions write
 * tables back between flushes.
 */
#include <stdlib.h>
#include <string.h>

#include "crash-driver.h"

struct params {
    unsigned ops;
    size_t max_len;
    unsigned flush_one_in; /* flush after a call with probability 1/n */
    int zeroes;            /* also write zeros now and then */
    int discards;          /* also discard, and write zeros that unmap */
};

static size_t pick_len(struct crash_rng *g, size_t max_len)
{
    size_t len;

    switch (crash_rng_below(g, 4)) {
    case 0:
        len = (size_t)crash_rng_range(g, 1, 512);
        break;
    case 1:
        len = (size_t)crash_rng_range(g, 1, 4096 + 512);
        break;
    default:
        len = (size_t)crash_rng_range(g, 1, max_len);
        break;
    }
    return len < max_len ? len : max_len;
}

static void workload(struct crash_run *r, void *arg)
{
    const struct params *p = arg;
    struct crash_rng g;
    uint64_t size = crash_virtual_size(r);
    uint8_t *buf = malloc(p->max_len);

    CRASH_CHECK(buf != NULL);
    crash_rng_seed(&g, crash_seed(r));
    for (unsigned i = 0; i < p->ops; i++) {
        size_t len = pick_len(&g, p->max_len);
        uint64_t off = crash_rng_below(&g, size - len + 1);

        if (p->discards && crash_rng_below(&g, 5) == 0) {
            if (crash_rng_below(&g, 2))
                crash_discard(r, len, off);
            else
                crash_pwrite_zeroes_unmap(r, len, off);
        } else if (p->zeroes && crash_rng_below(&g, 8) == 0) {
            crash_pwrite_zeroes(r, len, off);
        } else {
            crash_rng_fill(&g, buf, len);
            crash_pwrite(r, buf, len, off);
        }
        if (crash_rng_below(&g, 4) == 0) {
            size_t rlen = pick_len(&g, p->max_len);
            crash_pread_check(r, rlen, crash_rng_below(&g, size - rlen + 1));
        }
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
        {"random-4k-4M", 1, 4u << 20, 4096, 0, {24, 65536, 3, 1, 0}},
        {"random-4k-4M-b", 2, 4u << 20, 4096, 0, {24, 65536, 3, 1, 0}},
        {"random-512-1M", 3, 1u << 20, 512, 0, {24, 8192, 3, 1, 0}},
        {"random-64k-8M", 4, 8u << 20, 65536, 0, {16, 65536, 3, 0, 0}},
        /* 4 cached tables of 2 MiB each over 64 MiB: evictions. */
        {"random-evict-4k-64M", 5, 64u << 20, 4096, 1, {40, 16384, 8, 1, 0}},
        /* 512-byte clusters have 32 KiB tables mapping 2 MiB each. */
        {"random-evict-512-64M", 6, 64u << 20, 512, 1, {40, 4096, 8, 1, 0}},
        /* Discards among the writes (issue 12). */
        {"random-discard-4k-4M", 7, 4u << 20, 4096, 0, {24, 65536, 3, 1, 1}},
        {"random-discard-512-1M", 8, 1u << 20, 512, 0, {24, 8192, 3, 1, 1}},
        {"random-discard-evict", 9, 64u << 20, 4096, 1, {40, 16384, 8, 1, 1}},
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
        s.workload = workload;
        s.arg = (void *)&cases[i].p;
        crash_run_spec(&s);
        free(image);
    }
    crash_end();
}
