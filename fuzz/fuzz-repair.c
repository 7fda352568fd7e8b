/*
 * fuzz-repair: repairing a damaged image must not lose good data.
 *
 * The input is the sequence of choices of tests/harness/repair-prop.h,
 * the same property test-repair checks with a PRNG: the image geometry
 * (cluster size 512..4096, l2_bits 6..7, 3..8 L1 entries, L1 table
 * placement, a stored backing name), a script of normal and compressed
 * writes, then 1-3 damages of the raw bytes (shared tables, tables on
 * the L1 table or header, entries aliasing other clusters or pointing at
 * tables, misaligned entries, entries past the end, a cut-off tail) and
 * a few writes after the repair.  Each choice takes 1, 2 or 4 input
 * bytes; once the input runs out, a PRNG seeded from it takes over.
 * Any violated promise (see repair-prop.h) calls abort().
 */
#include <stddef.h>
#include <stdint.h>

#include "repair-prop.h"

struct input_source {
    const uint8_t *p;
    size_t n;
    uint64_t x; /* splitmix64 state for when the input is used up */
};

static uint64_t input_below(void *opaque, uint64_t n)
{
    struct input_source *in = opaque;
    unsigned width = n <= 256 ? 1 : n <= 65536 ? 2 : 4;
    uint64_t v = 0;

    if (in->n == 0) {
        uint64_t z = (in->x += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
    }
    for (unsigned i = 0; i < width && in->n > 0; i++) {
        v = v << 8 | *in->p++;
        in->n--;
    }
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input_source in = {data, size, UINT64_C(0xcbf29ce484222325)};
    struct rp_source src = {input_below, &in};

    /* FNV-1a of the input seeds the PRNG that follows it. */
    for (size_t i = 0; i < size; i++)
        in.x = (in.x ^ data[i]) * UINT64_C(0x100000001b3);
    rp_run(&src);
    return 0;
}
