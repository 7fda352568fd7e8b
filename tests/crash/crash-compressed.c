/*
 * crash-compressed: compressed writes of whole clusters (some that do not
 * shrink, so are stored normally), over unallocated, allocated and
 * already compressed clusters, the cluster that ends at an unaligned
 * virtual size, and partial normal writes and zero writes over compressed
 * clusters, with a flush every few calls and the power lost at each write
 * in turn.
 */
#include <stdlib.h>
#include <string.h>

#include "crash-driver.h"

struct params {
    unsigned ops;
    unsigned region; /* clusters the workload keeps rewriting */
};

static void workload(struct crash_run *r, void *arg)
{
    const struct params *p = arg;
    struct crash_rng g;
    uint64_t size = crash_virtual_size(r);
    uint32_t cs = crash_cluster_size(r);
    uint64_t last = (size - 1) / cs; /* the last cluster, maybe partial */
    uint8_t *buf = malloc(4 * (size_t)cs);

    CRASH_CHECK(buf != NULL);
    crash_rng_seed(&g, crash_seed(r));
    for (unsigned i = 0; i < p->ops; i++) {
        unsigned what = (unsigned)crash_rng_below(&g, 10);

        if (what < 6) {
            /* 1..3 whole clusters, or the tail up to the virtual size. */
            uint64_t c = crash_rng_below(&g, 8) == 0
                             ? last
                             : crash_rng_below(&g, p->region);
            uint64_t n = crash_rng_range(&g, 1, 3);
            uint64_t off = c * cs;
            size_t len;

            if (c + n > last)
                n = last + 1 - c;
            len = (size_t)(off + n * cs > size ? size - off : n * cs);
            if (crash_rng_below(&g, 6) == 0)
                crash_rng_fill(&g, buf, len); /* does not shrink */
            else
                crash_rng_fill_compressible(&g, buf, len);
            crash_pwrite_compressed(r, buf, len, off);
        } else if (what < 9) {
            /* A partial normal write, often over a compressed cluster. */
            size_t len = (size_t)crash_rng_range(&g, 1, cs + cs / 2);
            uint64_t off =
                crash_rng_below(&g, p->region) * cs + crash_rng_below(&g, cs);

            if (off + len > size)
                len = (size_t)(size - off);
            crash_rng_fill(&g, buf, len);
            crash_pwrite(r, buf, len, off);
        } else {
            size_t len = (size_t)crash_rng_range(&g, 1, 2 * cs);
            uint64_t off = crash_rng_below(&g, (uint64_t)p->region * cs);

            crash_pwrite_zeroes(r, len, off);
        }
        if (crash_rng_below(&g, 5) == 0)
            crash_pread_check(r, 2 * cs,
                              crash_rng_below(&g, (p->region - 1) * cs));
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
        uint64_t size;
        uint32_t cluster_size;
        struct params p;
    } cases[] = {
        /* Virtual sizes not a multiple of the cluster size. */
        {"compressed-4k", 11, (1u << 20) + 1536, 4096, {30, 24}},
        {"compressed-4k-b", 12, (1u << 20) + 1536, 4096, {30, 24}},
        {"compressed-512", 13, (256u << 10) + 512, 512, {30, 24}},
        {"compressed-64k", 14, (4u << 20) + 4096, 65536, {24, 12}},
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
        s.workload = workload;
        s.arg = (void *)&cases[i].p;
        crash_run_spec(&s);
        free(image);
    }
    crash_end();
}
