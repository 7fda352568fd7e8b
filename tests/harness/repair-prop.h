/*
 * repair-prop.h - the repair property, shared by tests/unit/test-repair.c
 * (choices from a seeded PRNG) and fuzz/fuzz-repair.c (choices from the
 * fuzzer's input).
 *
 * One case: write a valid qcow image in memory with random normal and
 * compressed writes, keeping a model of the guest contents; parse its
 * tables from the raw bytes (layout.h, not the library); damage the raw
 * bytes in 1-3 ways, recording which guest clusters each damage touched;
 * read every guest cluster; repair (REPAIR_ALL, then REPAIR_LEAKS); and
 * then demand that
 *   - a fresh open's plain check finds no corruption and no leak;
 *   - every guest cluster reads, and each untouched one reads as the model;
 *   - of each aliasing pair, at least one side reads as before the repair;
 *   - the layout is clean (layout.h);
 *   - new writes after the repair read back and leave the rest unchanged.
 * A violation prints the case and calls rp_fail_hook (which must not
 * return), else abort().
 */
#ifndef QCOWKIT_REPAIR_PROP_H
#define QCOWKIT_REPAIR_PROP_H

#include <errno.h>
#include <inttypes.h>

#include "layout.h"

/* Where the choices come from: a PRNG or the fuzzer's input. */
struct rp_source {
    uint64_t (*below)(void *opaque, uint64_t n); /* in [0, n); n > 0 */
    void *opaque;
};

static inline uint64_t rp_below(struct rp_source *s, uint64_t n)
{
    return n ? s->below(s->opaque, n) % n : 0;
}

enum rp_kind {
    RP_L1_ALIAS,     /* L1[a] := L1[b] (a table shared by two entries) */
    RP_L1_META,      /* L1[a] := the L1 table or the header */
    RP_L1_BAD,       /* L1[a] past the end of the file or misaligned */
    RP_L2_ALIAS,     /* an L2 entry := another entry (normal or compressed) */
    RP_L2_TABLE,     /* an L2 entry pointing at an L2 table */
    RP_L2_UNALIGNED, /* sector-aligned, not cluster-aligned */
    RP_L2_PAST_END,  /* a cluster past or across the end of the file */
    RP_TRUNCATE,     /* the file's tail cut off (always applied last) */
    RP_KINDS
};

#define RP_MAX_DAMAGE 3

struct rp_damage {
    enum rp_kind kind;
    uint8_t *touched; /* per guest cluster: this damage may change it */
    int pair;         /* 1: L1 ranges a and b; 2: guest clusters a and b */
    uint64_t a, b;
    char desc[160];
};

/* One guest cluster's chain in the valid image. */
struct rp_chain {
    uint64_t table;     /* L2 table offset (0: none) */
    uint64_t entry_pos; /* where its L2 entry lies (0: no table) */
    uint64_t entry;     /* the entry (0: unallocated) */
    uint64_t start, end;
};

struct rp_case {
    unsigned cluster_bits, l2_bits;
    uint64_t cs, size, clusters, per_table, table_bytes;
    uint64_t l1_offset, l1_entries;
    const char *backing; /* stored name, never opened */
    uint8_t *model;
    uint8_t *valid; /* the image as written */
    size_t valid_len;
    uint8_t *bytes; /* the damaged image */
    size_t len;
    struct rp_chain *chain;
    struct rp_damage dmg[RP_MAX_DAMAGE];
    unsigned ndmg;
    uint8_t *before, *after;
    int *before_rc;
    uint8_t *buf;
    char msgs[16][200]; /* the last check messages */
    unsigned nmsgs;
};

static void (*rp_fail_hook)(void);
static const struct rp_case *rp_current;

static inline void rp_print_case(const struct rp_case *c)
{
    fprintf(stderr,
            "    case: cluster_bits %u, l2_bits %u, size %" PRIu64
            ", L1 at %" PRIu64 " (%" PRIu64 " entries), backing name %s, "
            "file %zu bytes (valid: %zu)\n",
            c->cluster_bits, c->l2_bits, c->size, c->l1_offset, c->l1_entries,
            c->backing ? "yes" : "no", c->len, c->valid_len);
    for (unsigned i = 0; i < c->ndmg; i++)
        fprintf(stderr, "    damage %u: %s\n", i, c->dmg[i].desc);
    for (unsigned i = c->nmsgs > 16 ? c->nmsgs - 16 : 0; i < c->nmsgs; i++)
        fprintf(stderr, "    check: %s\n", c->msgs[i % 16]);
}

static inline void rp_fail_(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static inline void rp_fail_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s:%d: FAIL: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n    qcowkit_errmsg: \"%s\"\n", qcowkit_errmsg());
    if (rp_current)
        rp_print_case(rp_current);
    fflush(stderr);
    if (rp_fail_hook)
        rp_fail_hook();
    abort();
}

#define RP_FAIL(...) rp_fail_(__FILE__, __LINE__, __VA_ARGS__)
#define RP_OK(expr)                                                            \
    do {                                                                       \
        int rp_r_ = (expr);                                                    \
        if (rp_r_ != 0)                                                        \
            RP_FAIL("%s returned %d", #expr, rp_r_);                           \
    } while (0)

static inline void *rp_zalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);

    if (!p)
        RP_FAIL("out of memory (%zu bytes)", n);
    return p;
}

static inline void rp_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t rp_align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* Bytes of guest cluster g (the last one may be short). */
static inline size_t rp_cluster_len(const struct rp_case *c, uint64_t g)
{
    uint64_t off = g * c->cs;

    return (size_t)(c->size - off < c->cs ? c->size - off : c->cs);
}

/* Pseudo-random bytes from a 64-bit seed (cheap: not from the input). */
static inline void rp_fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15u + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* Data that deflates well, so that compressed writes stay compressed. */
static inline void rp_compressible(uint8_t *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((((i / 48) + tag) & 0x7f) | 1);
}

static inline void rp_set_geometry(struct rp_case *c, unsigned cluster_bits,
                                   unsigned l2_bits, uint64_t size,
                                   int l1_at_512, const char *backing)
{
    uint64_t shift = cluster_bits + l2_bits;
    uint64_t hsize = LAYOUT_HEADER_SIZE + (backing ? strlen(backing) : 0);

    c->cluster_bits = cluster_bits;
    c->l2_bits = l2_bits;
    c->cs = UINT64_C(1) << cluster_bits;
    c->size = size;
    c->clusters = (size + c->cs - 1) / c->cs;
    c->per_table = UINT64_C(1) << l2_bits;
    c->table_bytes = c->per_table * 8;
    c->l1_entries = (size + (UINT64_C(1) << shift) - 1) >> shift;
    c->l1_offset = l1_at_512 ? 512 : rp_align_up(hsize, 8);
    c->backing = backing;
}

/* The bytes of an empty image of c's geometry. */
static inline struct qcowkit_io *rp_empty_image(const struct rp_case *c)
{
    size_t len = (size_t)(c->l1_offset + rp_align_up(c->l1_entries * 8, 512));
    uint8_t *b = rp_zalloc(len);
    struct qcowkit_io *io = NULL;
    size_t blen = c->backing ? strlen(c->backing) : 0;

    rp_put_be64(b, UINT64_C(0x514649fb00000001));
    rp_put_be64(b + 8, blen ? LAYOUT_HEADER_SIZE : 0);
    rp_put_be64(b + 16, (uint64_t)blen << 32);
    rp_put_be64(b + 24, c->size);
    b[32] = (uint8_t)c->cluster_bits;
    b[33] = (uint8_t)c->l2_bits;
    rp_put_be64(b + 40, c->l1_offset);
    if (blen)
        memcpy(b + LAYOUT_HEADER_SIZE, c->backing, blen);
    RP_OK(qcowkit_io_new_memory(b, len, &io));
    free(b);
    return io;
}

static inline struct qcowkit_image *rp_open(struct qcowkit_io *io)
{
    struct qcowkit_open_opts o;
    struct qcowkit_image *img = NULL;

    qcowkit_open_opts_init(&o);
    o.flags = QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_BACKING;
    o.format = QCOWKIT_FORMAT_QCOW;
    RP_OK(qcowkit_open_io(io, "repair.qcow", &o, &img));
    return img;
}

/* count random normal and compressed writes (and flushes) into model. */
static inline void rp_random_writes(struct rp_case *c,
                                    struct qcowkit_image *img, uint8_t *model,
                                    struct rp_source *src, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        uint64_t k = rp_below(src, 10), off;
        size_t n;
        if (k < 6) {
            off = rp_below(src, c->size);
            n = (size_t)(1 + rp_below(src, 3 * c->cs));
            if (n > c->size - off)
                n = (size_t)(c->size - off);
            rp_fill(c->buf, n, rp_below(src, 1u << 30) + i);
            RP_OK(qcowkit_pwrite(img, c->buf, n, off));
        } else if (k < 9) {
            off = rp_below(src, c->clusters) * c->cs;
            n = (size_t)((1 + rp_below(src, 2)) * c->cs);
            if (n > c->size - off)
                n = (size_t)(c->size - off);
            rp_compressible(c->buf, n, rp_below(src, 256));
            RP_OK(qcowkit_pwrite_compressed(img, c->buf, n, off));
        } else {
            RP_OK(qcowkit_flush(img));
            continue;
        }
        memcpy(model + off, c->buf, n);
    }
}

/* Parse every guest cluster's chain from the valid image's bytes. */
static inline void rp_parse(struct rp_case *c)
{
    struct layout_geom g;

    if (layout_geom_parse(c->valid, c->valid_len, &g) != 0)
        RP_FAIL("the written image has no valid header");
    c->chain = rp_zalloc(c->clusters * sizeof *c->chain);
    for (uint64_t i = 0; i < c->clusters; i++) {
        struct rp_chain *ch = &c->chain[i];
        uint64_t l1 = i >> c->l2_bits, j = i & (c->per_table - 1);
        ch->table = layout_be64(c->valid + c->l1_offset + l1 * 8);
        if (!ch->table)
            continue;
        ch->entry_pos = ch->table + j * 8;
        ch->entry = layout_be64(c->valid + ch->entry_pos);
        if (ch->entry && layout_entry_extent(&g, ch->entry, c->valid_len,
                                             &ch->start, &ch->end))
            RP_FAIL("the written image has a bad entry for guest cluster "
                    "%" PRIu64,
                    i);
    }
}

static inline void rp_alloc_buffers(struct rp_case *c)
{
    c->model = rp_zalloc(c->size);
    c->before = rp_zalloc(c->size);
    c->after = rp_zalloc(c->size);
    c->before_rc = rp_zalloc(c->clusters * sizeof *c->before_rc);
    c->buf = rp_zalloc(3 * c->cs);
}

/*
 * Write the valid image: writes (count, from src) unless the caller
 * fills it through *keep (then the handle is returned open).
 */
static inline void rp_finish_build(struct rp_case *c, struct qcowkit_io *io,
                                   struct qcowkit_image *img)
{
    struct layout_result lr;
    const uint8_t *data;

    RP_OK(qcowkit_close(img));
    RP_OK(qcowkit_io_memory_data(io, &data, &c->valid_len));
    c->valid = rp_zalloc(c->valid_len);
    memcpy(c->valid, data, c->valid_len);
    qcowkit_io_close(io);
    c->bytes = rp_zalloc(c->valid_len);
    memcpy(c->bytes, c->valid, c->valid_len);
    c->len = c->valid_len;
    if (layout_check(c->valid, c->valid_len, &lr))
        RP_FAIL("the freshly written image is not clean: %s", lr.first);
    rp_parse(c);
}

/* A random geometry and random writes. */
static inline void rp_build(struct rp_case *c, struct rp_source *src)
{
    unsigned cb = 9 + (unsigned)rp_below(src, 4);
    unsigned l2 = 6 + (unsigned)rp_below(src, 2);
    uint64_t cover = UINT64_C(1) << (cb + l2);
    uint64_t size = (3 + rp_below(src, 6)) * cover;
    struct qcowkit_io *io;
    struct qcowkit_image *img;

    while (size > (UINT64_C(1) << 20) && size > cover)
        size -= cover;
    /* Sometimes a last cluster (or table) that is only partly used. */
    if (rp_below(src, 3) == 0)
        size -= 512 * rp_below(src, (UINT64_C(1) << cb) / 512 + 1);
    rp_set_geometry(c, cb, l2, size, rp_below(src, 2) == 0,
                    rp_below(src, 4) == 0 ? "backing.img" : NULL);
    rp_alloc_buffers(c);
    io = rp_empty_image(c);
    img = rp_open(io);
    rp_random_writes(c, img, c->model, src,
                     (unsigned)(8 + rp_below(src, 8 + 2 * c->clusters / 8)));
    rp_finish_build(c, io, img);
}

/* ------------------------------------------------------------- damage */

static inline struct rp_damage *rp_new_damage(struct rp_case *c,
                                              enum rp_kind kind)
{
    struct rp_damage *d = &c->dmg[c->ndmg++];

    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->touched = rp_zalloc(c->clusters);
    return d;
}

static inline void rp_touch_range(struct rp_case *c, struct rp_damage *d,
                                  uint64_t l1)
{
    for (uint64_t j = 0; j < c->per_table; j++)
        if ((l1 << c->l2_bits) + j < c->clusters)
            d->touched[(l1 << c->l2_bits) + j] = 1;
}

static inline uint64_t rp_l1_of_valid(const struct rp_case *c, uint64_t i)
{
    return layout_be64(c->valid + c->l1_offset + i * 8);
}

static inline void rp_set_l1(struct rp_case *c, uint64_t i, uint64_t v)
{
    rp_put_be64(c->bytes + c->l1_offset + i * 8, v);
}

/* A random L1 index with a table in the valid image, or -1. */
static inline int64_t rp_pick_table(struct rp_case *c, struct rp_source *src)
{
    uint64_t start = rp_below(src, c->l1_entries);

    for (uint64_t k = 0; k < c->l1_entries; k++) {
        uint64_t i = (start + k) % c->l1_entries;
        if (rp_l1_of_valid(c, i))
            return (int64_t)i;
    }
    return -1;
}

/* A guest cluster with an L2 entry (compressed: prefer compressed). */
static inline int64_t rp_pick_cluster(struct rp_case *c, struct rp_source *src,
                                      int allocated, int compressed)
{
    uint64_t start = rp_below(src, c->clusters);

    for (int pass = compressed ? 0 : 1; pass < 2; pass++) {
        for (uint64_t k = 0; k < c->clusters; k++) {
            uint64_t g = (start + k) % c->clusters;
            const struct rp_chain *ch = &c->chain[g];
            if (!ch->table || (allocated && !ch->entry))
                continue;
            if (pass == 0 && !(ch->entry & LAYOUT_COMPRESSED))
                continue;
            return (int64_t)g;
        }
    }
    return -1;
}

static inline int rp_l1_alias(struct rp_case *c, uint64_t a, uint64_t b)
{
    struct rp_damage *d;
    uint64_t t = rp_l1_of_valid(c, b);

    if (a == b || !t || a >= c->l1_entries)
        return 0;
    d = rp_new_damage(c, RP_L1_ALIAS);
    rp_set_l1(c, a, t);
    rp_touch_range(c, d, a);
    rp_touch_range(c, d, b);
    d->pair = 1;
    d->a = a;
    d->b = b;
    snprintf(d->desc, sizeof d->desc,
             "L1[%" PRIu64 "] := L1[%" PRIu64 "] = %" PRIu64, a, b, t);
    return 1;
}

/* Set L1[a] to v; kind and why describe it. */
static inline int rp_l1_set(struct rp_case *c, enum rp_kind kind, uint64_t a,
                            uint64_t v, const char *why)
{
    struct rp_damage *d = rp_new_damage(c, kind);

    rp_set_l1(c, a, v);
    rp_touch_range(c, d, a);
    snprintf(d->desc, sizeof d->desc, "L1[%" PRIu64 "] := %" PRIu64 " (%s)", a,
             v, why);
    return 1;
}

/* Set the L2 entry of guest cluster g to v. */
static inline struct rp_damage *rp_l2_set(struct rp_case *c, enum rp_kind kind,
                                          uint64_t g, uint64_t v,
                                          const char *why)
{
    struct rp_damage *d = rp_new_damage(c, kind);

    rp_put_be64(c->bytes + c->chain[g].entry_pos, v);
    d->touched[g] = 1;
    snprintf(d->desc, sizeof d->desc,
             "L2 entry of guest cluster %" PRIu64 " (at %" PRIu64
             ") := 0x%" PRIx64 " (%s)",
             g, c->chain[g].entry_pos, v, why);
    return d;
}

/* Touch every valid chain whose data shares bytes with [start, end). */
static inline void rp_touch_overlaps(struct rp_case *c, struct rp_damage *d,
                                     uint64_t start, uint64_t end)
{
    for (uint64_t g = 0; g < c->clusters; g++)
        if (c->chain[g].entry && c->chain[g].start < end &&
            start < c->chain[g].end)
            d->touched[g] = 1;
}

static inline int rp_l2_alias(struct rp_case *c, uint64_t g1, uint64_t g2)
{
    struct rp_damage *d;

    if (g1 == g2 || !c->chain[g1].table || !c->chain[g2].entry ||
        c->chain[g1].entry == c->chain[g2].entry)
        return 0;
    d = rp_l2_set(c, RP_L2_ALIAS, g1, c->chain[g2].entry,
                  "the entry of another guest cluster");
    d->touched[g2] = 1;
    d->pair = 2;
    d->a = g1;
    d->b = g2;
    return 1;
}

/* Cut the file to new_len; every chain reaching past it is touched. */
static inline int rp_truncate(struct rp_case *c, uint64_t new_len)
{
    struct rp_damage *d;

    if (new_len >= c->len || new_len < c->l1_offset + c->l1_entries * 8)
        return 0;
    d = rp_new_damage(c, RP_TRUNCATE);
    for (uint64_t g = 0; g < c->clusters; g++) {
        const struct rp_chain *ch = &c->chain[g];
        if ((ch->table && ch->table + c->table_bytes > new_len) ||
            (ch->entry && ch->end > new_len))
            d->touched[g] = 1;
    }
    snprintf(d->desc, sizeof d->desc, "file truncated from %zu to %" PRIu64,
             c->len, new_len);
    c->len = (size_t)new_len;
    return 1;
}

static inline int rp_damage_l1(struct rp_case *c, struct rp_source *src,
                               enum rp_kind kind)
{
    uint64_t a = rp_below(src, c->l1_entries);
    int64_t b = rp_pick_table(c, src);

    if (kind == RP_L1_ALIAS)
        return b >= 0 && rp_l1_alias(c, a, (uint64_t)b);
    if (kind == RP_L1_META)
        return rp_below(src, 2)
                   ? rp_l1_set(c, kind, a, c->l1_offset, "the L1 table")
                   : rp_l1_set(c, kind, a, 8 * (1 + rp_below(src, 5)),
                               "the header");
    switch (rp_below(src, 3)) {
    case 0:
        return rp_l1_set(c, kind, a,
                         rp_align_up(c->len, 512) + 512 * rp_below(src, 8),
                         "past the end");
    case 1:
        if (c->len % 512)
            return rp_l1_set(c, kind, a, c->len / 512 * 512, "across the end");
        /* fall through */
    default:
        return rp_l1_set(c, kind, a,
                         rp_below(src, c->len) / 512 * 512 +
                             8 * (1 + rp_below(src, 63)),
                         "not aligned to 512");
    }
}

/* A compressed entry whose bytes run past the end of the file. */
static inline uint64_t rp_compressed_past_end(struct rp_case *c,
                                              struct rp_source *src)
{
    uint64_t n = 1 + rp_below(src, c->cs - 1);
    uint64_t off = c->len - n + 1 + rp_below(src, n);

    if (off == 0 || n > c->len)
        off = c->len;
    return LAYOUT_COMPRESSED | n << (63 - c->cluster_bits) | off;
}

static inline int rp_damage_l2(struct rp_case *c, struct rp_source *src,
                               enum rp_kind kind)
{
    int64_t g = rp_pick_cluster(c, src, 0, 0), t, h;
    uint64_t v;

    if (g < 0)
        return 0;
    switch (kind) {
    case RP_L2_ALIAS:
        h = rp_pick_cluster(c, src, 1, (int)rp_below(src, 2));
        return h >= 0 && rp_l2_alias(c, (uint64_t)g, (uint64_t)h);
    case RP_L2_TABLE:
        t = rp_pick_table(c, src);
        if (t < 0)
            return 0;
        v = rp_l1_of_valid(c, (uint64_t)t);
        if (c->table_bytes > c->cs)
            v += c->cs * rp_below(src, c->table_bytes / c->cs);
        /* If that table is detached by another damage, the entry is
         * trusted and claims a whole cluster: compressed data packed
         * after the table in that cluster may lose to it. */
        rp_touch_overlaps(c, rp_l2_set(c, kind, (uint64_t)g, v, "an L2 table"),
                          v, v + c->cs);
        return 1;
    case RP_L2_UNALIGNED:
        if (c->cs == 512)
            return 0;
        v = rp_below(src, c->len) / c->cs * c->cs +
            512 * (1 + rp_below(src, c->cs / 512 - 1));
        rp_l2_set(c, kind, (uint64_t)g, v, "not cluster-aligned");
        return 1;
    default:
        if (rp_below(src, 3) == 0)
            v = rp_compressed_past_end(c, src);
        else if (c->len % c->cs && rp_below(src, 2))
            v = c->len / c->cs * c->cs;
        else
            v = rp_align_up(c->len, c->cs) + c->cs * rp_below(src, 4);
        rp_l2_set(c, kind, (uint64_t)g, v, "past or across the end");
        return 1;
    }
}

static inline int rp_damage_one(struct rp_case *c, struct rp_source *src,
                                enum rp_kind kind)
{
    uint64_t l1_end = c->l1_offset + c->l1_entries * 8;

    if (kind <= RP_L1_BAD)
        return rp_damage_l1(c, src, kind);
    if (kind < RP_TRUNCATE)
        return rp_damage_l2(c, src, kind);
    if (c->len <= l1_end)
        return 0;
    return rp_truncate(c, rp_below(src, 2)
                              ? l1_end + rp_below(src, c->len - l1_end)
                              : rp_align_up(l1_end, 512) +
                                    rp_below(src, c->len - l1_end) / 512 * 512);
}

/*
 * A damage kind below limit; RP_KINDS_MASK (an environment variable, a
 * bit per enum rp_kind) narrows the choice when chasing one problem.
 */
static inline enum rp_kind rp_pick_kind(struct rp_source *src, unsigned limit)
{
    const char *env = getenv("RP_KINDS_MASK");
    unsigned mask = env && *env ? (unsigned)strtoul(env, NULL, 0) : ~0u;
    enum rp_kind k = (enum rp_kind)rp_below(src, limit);

    for (unsigned i = 0; i < limit && !(mask & (1u << k)); i++)
        k = (enum rp_kind)((k + 1) % limit);
    return k;
}

/* 1-3 random damages; a truncation comes last so nothing regrows the file. */
static inline void rp_damage(struct rp_case *c, struct rp_source *src)
{
    unsigned want = 1 + (unsigned)rp_below(src, RP_MAX_DAMAGE);
    enum rp_kind kinds[RP_MAX_DAMAGE];

    for (unsigned i = 0; i < want; i++)
        kinds[i] = rp_pick_kind(src, RP_KINDS);
    for (unsigned i = 0; i + 1 < want; i++) {
        if (kinds[i] == RP_TRUNCATE) {
            kinds[i] = kinds[want - 1];
            kinds[want - 1] = RP_TRUNCATE;
        }
    }
    for (unsigned i = 0; i < want; i++) {
        for (int tries = 0; tries < 8; tries++) {
            if (rp_damage_one(c, src, kinds[i]))
                break;
            kinds[i] = rp_pick_kind(src, RP_TRUNCATE);
        }
    }
}

/* --------------------------------------------------------- verification */

static inline void rp_note(void *opaque, const char *message)
{
    struct rp_case *c = opaque;

    snprintf(c->msgs[c->nmsgs++ % 16], sizeof c->msgs[0], "%s", message);
}

static inline void rp_check(struct rp_case *c, struct qcowkit_image *img,
                            unsigned flags, struct qcowkit_check_report *r)
{
    int err;

    memset(r, 0, sizeof *r);
    r->struct_size = sizeof *r;
    err = qcowkit_check(img, flags, rp_note, c, r);
    if (err != 0)
        RP_FAIL("qcowkit_check(flags %u) returned %d", flags, err);
}

/* Was guest cluster g touched by a damage other than skip? */
static inline int rp_touched(const struct rp_case *c, uint64_t g, int skip)
{
    for (unsigned i = 0; i < c->ndmg; i++)
        if ((int)i != skip && c->dmg[i].touched[g])
            return 1;
    return 0;
}

/* Does every cluster of a side, untouched by other damage, read as before? */
static inline int rp_side_as_before(const struct rp_case *c, unsigned di,
                                    uint64_t first, uint64_t count)
{
    for (uint64_t g = first; g < first + count && g < c->clusters; g++) {
        size_t n = rp_cluster_len(c, g);
        /* Other damage, or unreadable before: nothing there to keep. */
        if (rp_touched(c, g, (int)di) || c->before_rc[g] != 0)
            continue;
        if (memcmp(c->before + g * c->cs, c->after + g * c->cs, n) != 0)
            return 0;
    }
    return 1;
}

static inline void rp_verify_pairs(const struct rp_case *c)
{
    for (unsigned i = 0; i < c->ndmg; i++) {
        const struct rp_damage *d = &c->dmg[i];
        uint64_t n = d->pair == 1 ? c->per_table : 1;
        uint64_t a = d->pair == 1 ? d->a << c->l2_bits : d->a;
        uint64_t b = d->pair == 1 ? d->b << c->l2_bits : d->b;
        if (!d->pair)
            continue;
        if (!rp_side_as_before(c, i, a, n) && !rp_side_as_before(c, i, b, n))
            RP_FAIL("damage %u (%s): neither guest cluster %" PRIu64
                    " nor %" PRIu64 " (%" PRIu64
                    " clusters each) reads as it did before the repair",
                    i, d->desc, a, b, n);
    }
}

/* Read every guest cluster into out; rc (if not NULL) gets the results. */
static inline void rp_read_all(struct rp_case *c, struct qcowkit_image *img,
                               uint8_t *out, int *rc, const char *when)
{
    for (uint64_t g = 0; g < c->clusters; g++) {
        size_t n = rp_cluster_len(c, g);
        int err = qcowkit_pread(img, out + g * c->cs, n, g * c->cs);
        if (err != 0 && (!rc || err != -EIO))
            RP_FAIL("%s: reading guest cluster %" PRIu64 " returned %d", when,
                    g, err);
        if (err != 0)
            memset(out + g * c->cs, 0, n);
        if (rc)
            rc[g] = err;
    }
}

/* Untouched guest clusters of got must equal the model. */
static inline void rp_untouched_as_model(const struct rp_case *c,
                                         const uint8_t *got, const char *when)
{
    for (uint64_t g = 0; g < c->clusters; g++) {
        size_t n = rp_cluster_len(c, g), at;
        if (rp_touched(c, g, -1))
            continue;
        if (memcmp(got + g * c->cs, c->model + g * c->cs, n) == 0)
            continue;
        for (at = 0; got[g * c->cs + at] == c->model[g * c->cs + at]; at++)
            ;
        RP_FAIL("%s: untouched guest cluster %" PRIu64 " (L1 entry %" PRIu64
                ") differs from the model at byte %zu: 0x%02x, want 0x%02x",
                when, g, g >> c->l2_bits, at, got[g * c->cs + at],
                c->model[g * c->cs + at]);
    }
}

static inline void rp_layout_clean(struct qcowkit_io *io, const char *when)
{
    struct layout_result lr;

    if (layout_check_io(io, &lr))
        RP_FAIL("%s: layout: %" PRIu64 " problem(s), first: %s", when,
                lr.problems, lr.first);
}

/* leaks_ok: rewriting a compressed cluster leaves its old bytes behind. */
static inline void rp_clean_check(struct rp_case *c, struct qcowkit_image *img,
                                  int leaks_ok, const char *when)
{
    struct qcowkit_check_report r;

    rp_check(c, img, 0, &r);
    if (r.corruptions || (r.leaks && !leaks_ok))
        RP_FAIL("%s: check finds %" PRIu64 " corruption(s), %" PRIu64
                " leak(s)",
                when, r.corruptions, r.leaks);
}

/* New writes into the repaired image must land in free space only. */
static inline void rp_write_after(struct rp_case *c, struct qcowkit_io *io,
                                  struct rp_source *src)
{
    struct qcowkit_image *img = rp_open(io);
    uint8_t *want = rp_zalloc(c->size), *got = rp_zalloc(c->size);

    memcpy(want, c->after, c->size);
    rp_random_writes(c, img, want, src, (unsigned)(2 + rp_below(src, 6)));
    RP_OK(qcowkit_close(img));
    img = rp_open(io);
    rp_read_all(c, img, got, NULL, "after writes to the repaired image");
    for (uint64_t g = 0; g < c->clusters; g++)
        if (memcmp(got + g * c->cs, want + g * c->cs, rp_cluster_len(c, g)) !=
            0)
            RP_FAIL("after writes to the repaired image: guest cluster "
                    "%" PRIu64 " does not read as written",
                    g);
    rp_layout_clean(io, "after writes to the repaired image");
    rp_clean_check(c, img, 1, "after writes to the repaired image");
    RP_OK(qcowkit_close(img));
    free(want);
    free(got);
}

/* Read, repair, re-open and check everything the header promises. */
static inline void rp_verify(struct rp_case *c, struct rp_source *src)
{
    struct qcowkit_check_report r;
    struct qcowkit_io *io = NULL;
    struct qcowkit_image *img;

    RP_OK(qcowkit_io_new_memory(c->bytes, c->len, &io));
    img = rp_open(io);
    rp_read_all(c, img, c->before, c->before_rc, "before the repair");
    rp_untouched_as_model(c, c->before, "before the repair (harness)");
    rp_check(c, img, QCOWKIT_CHECK_REPAIR_ALL, &r);
    rp_check(c, img, QCOWKIT_CHECK_REPAIR_LEAKS, &r);
    RP_OK(qcowkit_close(img));
    img = rp_open(io);
    rp_clean_check(c, img, 0, "after the repair (fresh open)");
    rp_read_all(c, img, c->after, NULL, "after the repair");
    rp_untouched_as_model(c, c->after, "after the repair");
    rp_verify_pairs(c);
    rp_layout_clean(io, "after the repair");
    RP_OK(qcowkit_close(img));
    rp_write_after(c, io, src);
    qcowkit_io_close(io);
}

static inline void rp_case_free(struct rp_case *c)
{
    for (unsigned i = 0; i < c->ndmg; i++)
        free(c->dmg[i].touched);
    free(c->model);
    free(c->valid);
    free(c->bytes);
    free(c->chain);
    free(c->before);
    free(c->after);
    free(c->before_rc);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

/* One whole random case: build, damage, verify. */
static inline void rp_run(struct rp_source *src)
{
    struct rp_case c;

    memset(&c, 0, sizeof c);
    rp_current = &c;
    rp_build(&c, src);
    rp_damage(&c, src);
    rp_verify(&c, src);
    rp_current = NULL;
    rp_case_free(&c);
}

#endif /* QCOWKIT_REPAIR_PROP_H */
