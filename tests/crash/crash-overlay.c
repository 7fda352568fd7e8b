/*
 * crash-overlay: an overlay over a raw backing file (a real file in a
 * temporary folder, named by absolute path); partial-cluster writes
 * must leave the backing file's data in the rest of each cluster across
 * every crash.  The overlay is a little larger than its backing file, so
 * the tail reads as zeros.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crash-driver.h"

struct params {
    unsigned ops;
    uint64_t hot; /* most writes fall in the first hot bytes */
};

static void workload(struct crash_run *r, void *arg)
{
    const struct params *p = arg;
    struct crash_rng g;
    uint64_t size = crash_virtual_size(r);
    uint32_t cs = crash_cluster_size(r);
    uint8_t *buf = malloc(2 * (size_t)cs);

    CRASH_CHECK(buf != NULL);
    crash_rng_seed(&g, crash_seed(r));
    for (unsigned i = 0; i < p->ops; i++) {
        uint64_t span = crash_rng_below(&g, 4) == 0 ? size : p->hot;
        uint64_t c = crash_rng_below(&g, span / cs);
        unsigned what = (unsigned)crash_rng_below(&g, 8);
        uint64_t off;
        size_t len;

        if (what < 5) {
            /* Inside one cluster, never all of it. */
            uint32_t a = (uint32_t)crash_rng_below(&g, cs);
            uint32_t b = (uint32_t)crash_rng_below(&g, cs);
            if (a > b) {
                uint32_t t = a;
                a = b;
                b = t;
            }
            if (a == 0 && b == cs - 1)
                a = 1;
            off = c * cs + a;
            len = b - a + 1;
        } else if (what < 7) {
            /* Across a cluster boundary. */
            off = c * cs + crash_rng_range(&g, 1, cs - 1);
            len = (size_t)crash_rng_range(&g, 2, cs);
        } else {
            /* A whole cluster. */
            off = c * cs;
            len = cs;
        }
        if (off + len > size)
            len = (size_t)(size - off);
        if (crash_rng_below(&g, 10) == 0) {
            crash_pwrite_zeroes(r, len, off);
        } else {
            crash_rng_fill(&g, buf, len);
            crash_pwrite(r, buf, len, off);
        }
        if (crash_rng_below(&g, 4) == 0)
            crash_pread_check(r, 2 * cs, crash_rng_below(&g, p->hot - cs));
        if (crash_rng_below(&g, 3) == 0)
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
        uint32_t cluster_size; /* 0: the default with a backing file, 512 */
        struct params p;
    } cases[] = {
        {"overlay-512", 21, 0, {40, 16384}},
        {"overlay-512-b", 22, 0, {40, 16384}},
        {"overlay-4k", 23, 4096, {40, 65536}},
        {"overlay-4k-b", 24, 4096, {40, 65536}},
    };
    const size_t backing_len = 2u << 20;
    const uint64_t size = backing_len + (64u << 10);
    char backing_path[4352], overlay_path[4352];
    uint8_t *backing = malloc(backing_len);
    struct crash_rng g;

    CRASH_CHECK(backing != NULL);
    crash_rng_seed(&g, 20);
    crash_rng_fill(&g, backing, backing_len);
    backing[0] = 0; /* never a qcow magic */
    snprintf(backing_path, sizeof backing_path, "%s/backing.raw",
             crash_tmpdir());
    snprintf(overlay_path, sizeof overlay_path, "%s/overlay.qcow",
             crash_tmpdir());
    crash_write_file(backing_path, backing, backing_len);

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qcowkit_create_opts co;
        struct crash_spec s;
        size_t len;
        uint8_t *image;

        qcowkit_create_opts_init(&co);
        co.size = size;
        co.backing_file = backing_path;
        co.cluster_size = cases[i].cluster_size;
        image = crash_make_image(&co, &len);

        memset(&s, 0, sizeof s);
        s.name = cases[i].name;
        s.seed = cases[i].seed;
        s.image = image;
        s.image_len = len;
        s.image_name = overlay_path;
        s.base = backing;
        s.base_len = backing_len;
        s.seeds = 8;
        s.workload = workload;
        s.arg = (void *)&cases[i].p;
        crash_run_spec(&s);
        free(image);
    }
    free(backing);
    crash_end();
}
