/*
 * layout.h - an independent check of a qcow v1 image's on-disk layout.
 *
 * Header-only and written from the format description alone (it uses no
 * code of lib/), so that a bug in the library's own checks cannot hide
 * itself here.  Given the bytes of an image it verifies that
 *   - the L1 table and every L2 table lie wholly inside the file, and
 *     L2 tables are aligned to 512 bytes;
 *   - every normal cluster is cluster-aligned and wholly inside the file,
 *     every compressed cluster has a size and lies inside the file;
 *   - no two of header, backing file name, L1 table, L2 tables, normal
 *     clusters and the bytes of compressed clusters overlap.
 * A flushed image that the library wrote must always pass; the tests call
 * it after every repair and (fuzz-ops, test-differential) after flushes.
 *
 *   struct layout_result r;
 *   if (layout_check(bytes, len, &r) != 0)
 *       printf("%s\n", r.first);
 */
#ifndef QCOWKIT_LAYOUT_H
#define QCOWKIT_LAYOUT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit.h"

#define LAYOUT_HEADER_SIZE 48
#define LAYOUT_COMPRESSED  (UINT64_C(1) << 63)

/* The header fields the layout depends on. */
struct layout_geom {
    uint64_t size; /* virtual size */
    uint64_t backing_offset;
    uint32_t backing_size;
    unsigned cluster_bits, l2_bits;
    uint64_t cluster_size;
    uint64_t l2_entries, table_bytes;
    uint64_t l1_offset, l1_entries;
    uint64_t offset_mask; /* host offset bits of a compressed entry */
};

static inline uint64_t layout_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline uint32_t layout_be32(const uint8_t *p)
{
    return (uint32_t)(layout_be64(p) >> 32);
}

/*
 * Parse the header.  Returns 0, or -1 if the bytes are not a qcow v1
 * image whose geometry this checker (and the library) accepts.
 */
static inline int layout_geom_parse(const uint8_t *img, size_t len,
                                    struct layout_geom *g)
{
    unsigned shift;

    memset(g, 0, sizeof *g);
    if (len < LAYOUT_HEADER_SIZE || layout_be32(img) != 0x514649fbu ||
        layout_be32(img + 4) != 1)
        return -1;
    g->backing_offset = layout_be64(img + 8);
    g->backing_size = layout_be32(img + 16);
    g->size = layout_be64(img + 24);
    g->cluster_bits = img[32];
    g->l2_bits = img[33];
    g->l1_offset = layout_be64(img + 40);
    if (g->cluster_bits < 9 || g->cluster_bits > 16 || g->l2_bits < 6 ||
        g->l2_bits > 13)
        return -1;
    shift = g->cluster_bits + g->l2_bits;
    if (g->size > UINT64_MAX - (UINT64_C(1) << shift))
        return -1;
    g->cluster_size = UINT64_C(1) << g->cluster_bits;
    g->l2_entries = UINT64_C(1) << g->l2_bits;
    g->table_bytes = g->l2_entries * 8;
    g->l1_entries = (g->size + (UINT64_C(1) << shift) - 1) >> shift;
    g->offset_mask = (UINT64_C(1) << (63 - g->cluster_bits)) - 1;
    return 0;
}

/* Does [off, off+n) lie wholly inside a file of len bytes? */
static inline int layout_inside(uint64_t off, uint64_t n, size_t len)
{
    return off < len && n <= len - off;
}

/*
 * The host bytes [*start, *end) that a non-zero L2 entry points at, and
 * whether they are where the format allows: 0 if so, else a reason.
 */
static inline const char *layout_entry_extent(const struct layout_geom *g,
                                              uint64_t e, size_t len,
                                              uint64_t *start, uint64_t *end)
{
    uint64_t n = g->cluster_size;

    *start = e;
    if (e & LAYOUT_COMPRESSED) {
        *start = e & g->offset_mask;
        n = (e >> (63 - g->cluster_bits)) & (g->cluster_size - 1);
        *end = *start + n;
        if (n == 0)
            return "a compressed cluster of size 0";
        return layout_inside(*start, n, len) ? NULL
                                             : "a compressed cluster outside "
                                               "the file";
    }
    *end = e + n;
    if (e & (g->cluster_size - 1))
        return "a normal cluster that is not cluster-aligned";
    return layout_inside(e, n, len) ? NULL
                                    : "a normal cluster not wholly inside "
                                      "the file";
}

enum layout_kind {
    LAYOUT_KIND_HEADER,
    LAYOUT_KIND_BACKING,
    LAYOUT_KIND_L1,
    LAYOUT_KIND_L2,
    LAYOUT_KIND_DATA,
    LAYOUT_KIND_PACKED, /* the bytes of a compressed cluster */
};

struct layout_extent {
    uint64_t start, end;
    uint64_t l1_index, l2_index;
    enum layout_kind kind;
};

struct layout_result {
    uint64_t problems;  /* misplaced + overlaps */
    uint64_t misplaced; /* outside the file, misaligned, malformed */
    uint64_t overlaps;  /* pairs of extents that share bytes */
    char first[384];    /* the first problem found, or "" */
};

struct layout_list {
    struct layout_extent *v;
    size_t n, cap;
};

static inline void layout_add(struct layout_list *l, enum layout_kind kind,
                              uint64_t start, uint64_t end, uint64_t l1_index,
                              uint64_t l2_index)
{
    if (start >= end)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct layout_extent *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "layout: out of memory\n");
            abort();
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct layout_extent){start, end, l1_index, l2_index, kind};
}

static inline void layout_problem(struct layout_result *r, int overlap,
                                  const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void layout_problem(struct layout_result *r, int overlap,
                                  const char *fmt, ...)
{
    r->problems++;
    if (overlap)
        r->overlaps++;
    else
        r->misplaced++;
    if (r->problems == 1) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first, sizeof r->first, fmt, ap);
        va_end(ap);
    }
}

static inline void layout_describe(const struct layout_extent *x, char *out,
                                   size_t n)
{
    static const char *const names[] = {"header",   "backing file name",
                                        "L1 table", "L2 table",
                                        "cluster",  "compressed cluster"};

    if (x->kind == LAYOUT_KIND_L2)
        snprintf(out, n, "L2 table of L1 entry %llu [%llu, %llu)",
                 (unsigned long long)x->l1_index, (unsigned long long)x->start,
                 (unsigned long long)x->end);
    else if (x->kind >= LAYOUT_KIND_DATA)
        snprintf(out, n, "%s of L1 entry %llu, L2 entry %llu [%llu, %llu)",
                 names[x->kind], (unsigned long long)x->l1_index,
                 (unsigned long long)x->l2_index, (unsigned long long)x->start,
                 (unsigned long long)x->end);
    else
        snprintf(out, n, "%s [%llu, %llu)", names[x->kind],
                 (unsigned long long)x->start, (unsigned long long)x->end);
}

/* Walk one L2 table, adding its clusters or reporting misplaced ones. */
static inline void layout_walk_table(const uint8_t *img, size_t len,
                                     const struct layout_geom *g,
                                     uint64_t l1_index, uint64_t table,
                                     struct layout_list *l,
                                     struct layout_result *r)
{
    for (uint64_t j = 0; j < g->l2_entries; j++) {
        uint64_t e = layout_be64(img + table + j * 8), start, end;
        const char *why;
        if (!e)
            continue;
        why = layout_entry_extent(g, e, len, &start, &end);
        if (why)
            layout_problem(r, 0,
                           "L1 entry %llu, L2 entry %llu (0x%llx) is %s "
                           "(file %zu bytes)",
                           (unsigned long long)l1_index, (unsigned long long)j,
                           (unsigned long long)e, why, len);
        else
            layout_add(l,
                       (e & LAYOUT_COMPRESSED) ? LAYOUT_KIND_PACKED
                                               : LAYOUT_KIND_DATA,
                       start, end, l1_index, j);
    }
}

static inline int layout_extent_cmp(const void *a, const void *b)
{
    const struct layout_extent *x = a, *y = b;

    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Sort by start; an extent starting before the furthest end seen overlaps. */
static inline void layout_find_overlaps(struct layout_list *l,
                                        struct layout_result *r)
{
    size_t far = 0;

    if (l->n)
        qsort(l->v, l->n, sizeof *l->v, layout_extent_cmp);
    for (size_t i = 1; i < l->n; i++) {
        if (l->v[i].start < l->v[far].end) {
            char a[160], b[160];
            layout_describe(&l->v[far], a, sizeof a);
            layout_describe(&l->v[i], b, sizeof b);
            layout_problem(r, 1, "%s overlaps %s", a, b);
        }
        if (l->v[i].end > l->v[far].end)
            far = i;
    }
}

/*
 * Check the layout of the image bytes img[0..len).  Returns the number of
 * problems (0: clean) and fills *r; an unparsable header is one problem.
 */
static inline uint64_t layout_check(const uint8_t *img, size_t len,
                                    struct layout_result *r)
{
    struct layout_geom g;
    struct layout_list l = {NULL, 0, 0};

    memset(r, 0, sizeof *r);
    if (layout_geom_parse(img, len, &g) != 0) {
        layout_problem(r, 0, "not a qcow v1 image this checker accepts");
        return r->problems;
    }
    layout_add(&l, LAYOUT_KIND_HEADER, 0, LAYOUT_HEADER_SIZE, 0, 0);
    if (g.backing_offset && g.backing_size) {
        if (!layout_inside(g.backing_offset, g.backing_size, len))
            layout_problem(r, 0, "the backing file name lies outside the file");
        layout_add(&l, LAYOUT_KIND_BACKING, g.backing_offset,
                   g.backing_offset + g.backing_size, 0, 0);
    }
    if (g.l1_entries > len / 8 ||
        !layout_inside(g.l1_offset, g.l1_entries * 8, len)) {
        layout_problem(r, 0, "the L1 table lies outside the file");
        free(l.v);
        return r->problems;
    }
    layout_add(&l, LAYOUT_KIND_L1, g.l1_offset, g.l1_offset + g.l1_entries * 8,
               0, 0);
    for (uint64_t i = 0; i < g.l1_entries; i++) {
        uint64_t t = layout_be64(img + g.l1_offset + i * 8);
        if (!t)
            continue;
        if ((t & 511) || !layout_inside(t, g.table_bytes, len)) {
            layout_problem(r, 0,
                           "L1 entry %llu: L2 table at %llu is misaligned or "
                           "not inside the file (%zu bytes)",
                           (unsigned long long)i, (unsigned long long)t, len);
            continue;
        }
        layout_add(&l, LAYOUT_KIND_L2, t, t + g.table_bytes, i, 0);
        layout_walk_table(img, len, &g, i, t, &l, r);
    }
    layout_find_overlaps(&l, r);
    free(l.v);
    return r->problems;
}

/* The same over an in-memory backend (the only kind the tests check). */
static inline uint64_t layout_check_io(struct qcowkit_io *io,
                                       struct layout_result *r)
{
    const uint8_t *data = NULL;
    size_t len = 0;

    if (qcowkit_io_memory_data(io, &data, &len) != 0) {
        memset(r, 0, sizeof *r);
        layout_problem(r, 0, "not an in-memory backend");
        return r->problems;
    }
    return layout_check(data, len, r);
}

#endif /* QCOWKIT_LAYOUT_H */
