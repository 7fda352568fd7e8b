/*
 * crash-discard: discards and zero writes that may unmap, among normal,
 * compressed and partial writes, with the power lost at each write in
 * turn (a punch counts as a write).  A discarded cluster must read, after
 * any crash, either what it held or what lies under it (zeros, or the
 * backing file's data), never the punched hole's zeros over a backing
 * file, nor a half-punched compressed stream: the punch comes only once
 * the cleared entry is durable.  Plain images and overlays over a raw
 * backing file shorter than the overlay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash-driver.h"

struct params {
    unsigned ops;
    unsigned region;       /* clusters most calls fall in */
    unsigned flush_one_in; /* flush after a call with probability 1/n */
    unsigned tables;       /* 0, or whole tables' spans: see table_calls */
};

/* A range of 1..4 clusters, often unaligned, inside the region or at the
 * end of the disk. */
static void pick_range(struct crash_run *r, struct crash_rng *g,
                       const struct params *p, uint64_t *off, size_t *len)
{
    uint64_t size = crash_virtual_size(r);
    uint32_t cs = crash_cluster_size(r);
    uint64_t c = crash_rng_below(g, 8) == 0 ? (size - 1) / cs
                                            : crash_rng_below(g, p->region);

    *off = c * cs;
    *len = (size_t)crash_rng_range(g, 1, 4) * cs;
    if (crash_rng_below(g, 2)) { /* unaligned ends */
        *off += crash_rng_below(g, cs);
        *len = (size_t)crash_rng_range(g, 1, *len);
    }
    if (*off >= size)
        *off = size - 1;
    if (*off + *len > size)
        *len = (size_t)(size - *off);
}

/*
 * Few clusters in each of a few L2 tables, and discards of whole spans of
 * tables, so that tables are left empty and freed.
 */
static void table_calls(struct crash_run *r, struct crash_rng *g,
                        const struct params *p, uint8_t *buf)
{
    uint32_t cs = crash_cluster_size(r);
    uint64_t span = (uint64_t)cs << crash_l2_bits(r);
    uint64_t t = crash_rng_below(g, p->tables) * span;
    unsigned what = (unsigned)crash_rng_below(g, 8);
    uint64_t off = t + crash_rng_below(g, span / cs) * cs;

    if (what < 4) {
        crash_rng_fill(g, buf, cs);
        crash_pwrite(r, buf, cs, off);
    } else if (what < 5) {
        crash_rng_fill_compressible(g, buf, cs);
        crash_pwrite_compressed(r, buf, cs, off);
    } else if (what < 7) {
        /* The span, sometimes a little more on either side. */
        uint64_t from = t > 0 && crash_rng_below(g, 2) ? t - 100 : t;
        crash_discard(r, t + span - from + crash_rng_below(g, 2) * cs, from);
    } else {
        crash_pwrite_zeroes_unmap(r, cs, off);
    }
}

static void workload(struct crash_run *r, void *arg)
{
    const struct params *p = arg;
    uint32_t cs = crash_cluster_size(r);
    uint8_t *buf = malloc(4 * (size_t)cs);
    struct crash_rng g;

    CRASH_CHECK(buf != NULL);
    crash_rng_seed(&g, crash_seed(r));
    for (unsigned i = 0; i < p->ops; i++) {
        unsigned what = (unsigned)crash_rng_below(&g, 10);
        uint64_t off;
        size_t len;

        pick_range(r, &g, p, &off, &len);
        if (p->tables) {
            table_calls(r, &g, p, buf);
        } else if (what < 3) {
            crash_rng_fill(&g, buf, len);
            crash_pwrite(r, buf, len, off);
        } else if (what < 5) {
            off -= off % cs; /* whole clusters, compressed */
            len = (len + cs - 1) / cs * cs;
            if (len > 3 * (size_t)cs)
                len = 3 * (size_t)cs;
            if (off + len > crash_virtual_size(r))
                len = (size_t)(crash_virtual_size(r) - off);
            crash_rng_fill_compressible(&g, buf, len);
            crash_pwrite_compressed(r, buf, len, off);
        } else if (what < 8) {
            crash_discard(r, len, off);
        } else {
            crash_pwrite_zeroes_unmap(r, len, off);
        }
        if (crash_rng_below(&g, 4) == 0)
            crash_pread_check(r, 2 * cs,
                              crash_rng_below(&g, p->region - 1) * cs);
        if (crash_rng_below(&g, p->flush_one_in) == 0)
            crash_flush(r);
    }
    free(buf);
}

static void run_case(const char *name, uint64_t seed, uint64_t size,
                     uint32_t cs, uint64_t cache_size, const char *backing,
                     const char *image_name, const uint8_t *base,
                     size_t base_len, const struct params *p)
{
    struct qcowkit_create_opts co;
    struct crash_spec s;
    size_t len;
    uint8_t *image;

    qcowkit_create_opts_init(&co);
    co.size = size;
    co.cluster_size = cs;
    co.backing_file = backing;
    image = crash_make_image(&co, &len);
    memset(&s, 0, sizeof s);
    s.name = name;
    s.seed = seed;
    s.image = image;
    s.image_len = len;
    s.image_name = image_name;
    s.cache_size = cache_size;
    s.base = base;
    s.base_len = base_len;
    s.workload = workload;
    s.arg = (void *)p;
    crash_run_spec(&s);
    free(image);
}

int main(int argc, char **argv)
{
    static const struct params small = {30, 24, 3, 0},
                               evict = {40, 4096, 10, 0},
                               tables = {32, 24, 4, 3};
    const size_t backing_len = (1u << 20) + 1536;
    char backing_path[4352], overlay_path[4352];
    uint8_t *backing = malloc(backing_len);
    struct crash_rng g;

    (void)argc;
    crash_begin(argv[0]);
    run_case("discard-4k", 41, (1u << 20) + 1536, 4096, 0, NULL, NULL, NULL, 0,
             &small);
    run_case("discard-512", 42, 256u << 10, 512, 0, NULL, NULL, NULL, 0,
             &small);
    /* Tables left empty by discards of their spans are freed. */
    run_case("discard-tables-4k", 46, 16u << 20, 4096, 0, NULL, NULL, NULL, 0,
             &tables);
    run_case("discard-tables-512", 47, 16u << 20, 512, 0, NULL, NULL, NULL, 0,
             &tables);
    /* 4 cached tables of 2 MiB over 16 MiB: evictions write tables back. */
    run_case("discard-evict-4k", 43, 16u << 20, 4096, 1, NULL, NULL, NULL, 0,
             &evict);

    CRASH_CHECK(backing != NULL);
    crash_rng_seed(&g, 40);
    crash_rng_fill(&g, backing, backing_len);
    backing[0] = 0; /* never a qcow magic */
    snprintf(backing_path, sizeof backing_path, "%s/backing.raw",
             crash_tmpdir());
    snprintf(overlay_path, sizeof overlay_path, "%s/overlay.qcow",
             crash_tmpdir());
    crash_write_file(backing_path, backing, backing_len);
    /* The overlay reaches past its backing file's end. */
    run_case("discard-overlay-4k", 44, (1u << 20) + 65536, 4096, 0,
             backing_path, overlay_path, backing, backing_len, &small);
    run_case("discard-overlay-tables", 48, (6u << 20) + 65536, 512, 0,
             backing_path, overlay_path, backing, backing_len, &tables);
    run_case("discard-overlay-512", 45, (1u << 20) + 65536, 512, 0,
             backing_path, overlay_path, backing, backing_len, &small);
    free(backing);
    crash_end();
}
