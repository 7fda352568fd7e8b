/*
 * The consistency check: every table and entry against the file and each
 * other, in windows of the file so that memory stays bounded whatever
 * the image size.  Problems that do not depend on the window (alignment,
 * bounds, inflation) are found and reported in the first pass only.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The most of the file one pass maps: 16 MiB of bitmaps. */
#define MAX_WINDOW_BYTES (UINT64_C(32) << 30)

struct checker {
    struct qcowkit_image *img;
    unsigned flags;
    qcowkit_check_fn fn;
    void *opaque;
    struct qcowkit_check_report r;
    uint64_t file_size;
    uint64_t win_start; /* byte offset of the window, sector aligned */
    uint64_t win_bytes; /* the window's size: no more than the file needs */
    uint64_t win_sectors;
    bool first_pass;
    uint8_t *used;   /* per sector: header, L1, L2 or normal cluster */
    uint8_t *packed; /* per sector: some compressed cluster's bytes */
    uint8_t *raw_table;
    uint8_t *inflated;
    uint64_t prev_host; /* end of the previous cluster, for fragmentation */
    uint64_t hole_start, hole_end; /* a known hole of the file */
    uint64_t data_start, data_end; /* a known run of data */
    uint64_t next_ref; /* the first byte past the window something uses */
    /* Compressed streams, as offset << cluster_bits | size (first pass). */
    uint64_t *packs;
    size_t pack_count, pack_cap;
    int pack_err;
};

static void say(struct checker *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct checker *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (!c->fn)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->fn(c->opaque, line);
}

static bool bit(const uint8_t *map, uint64_t i)
{
    return map[i / 8] & (1u << (i % 8));
}

static void set_bit(uint8_t *map, uint64_t i)
{
    map[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* Remember the first byte past the window that [offset, offset+len) uses. */
static void note_later_use(struct checker *c, uint64_t offset, uint64_t len)
{
    uint64_t win_end = c->win_start + c->win_bytes;

    if (offset + len <= win_end)
        return;
    if (offset < win_end)
        offset = win_end;
    if (offset < c->next_ref)
        c->next_ref = offset;
}

/*
 * Mark the sectors of [offset, offset+len) that fall in the window; false
 * if one was taken in a way that conflicts.  Sectors are marked "used"
 * (normal clusters: whole sectors, alone) or "packed" (compressed streams,
 * metadata and tables, whose bytes are checked exactly elsewhere and which
 * may share a sector with one another).
 */
static bool mark(struct checker *c, uint64_t offset, uint64_t len, bool packed)
{
    uint64_t first = offset / QCOW_SECTOR;
    uint64_t last = (offset + len - 1) / QCOW_SECTOR;
    uint64_t win_first = c->win_start / QCOW_SECTOR;
    bool clean = true;

    if (len == 0)
        return true;
    if (offset + len > c->r.image_end_offset)
        c->r.image_end_offset = offset + len;
    note_later_use(c, offset, len);
    for (uint64_t s = first; s <= last; s++) {
        uint64_t i;
        if (s < win_first || s - win_first >= c->win_sectors)
            continue;
        i = s - win_first;
        if (bit(c->used, i) || (!packed && bit(c->packed, i)))
            clean = false;
        set_bit(packed ? c->packed : c->used, i);
    }
    return clean;
}

static void mark_metadata(struct checker *c)
{
    struct qcowkit_image *img = c->img;
    const struct qk_header *h = &img->header;
    uint64_t padded_end;

    mark(c, 0, QCOW_HEADER_SIZE, true);
    if (h->backing_file_offset && h->backing_file_size)
        mark(c, h->backing_file_offset, h->backing_file_size, true);
    /* The exact table: after make-empty the next one may start in the
     * sector where it ends (zeroed padding is not counted as a leak). */
    mark(c, h->l1_table_offset, img->l1_entries * 8, true);
    /* QEMU writes the table in whole sectors; that padding is the image's. */
    padded_end =
        h->l1_table_offset + qk_align_up(img->l1_entries * 8, QCOW_SECTOR);
    if (padded_end <= c->file_size && padded_end > c->r.image_end_offset)
        c->r.image_end_offset = padded_end;
}

static int write_entry(struct checker *c, uint64_t at)
{
    uint8_t zero[8] = {0};
    return qk_write(c->img->io, zero, sizeof zero, at);
}

/* Clear an untrusted L1 or L2 entry on disk, if asked to. */
static void repair(struct checker *c, uint64_t entry_at, const char *what)
{
    if ((c->flags & QCOWKIT_CHECK_REPAIR_ALL) != QCOWKIT_CHECK_REPAIR_ALL)
        return;
    if (write_entry(c, entry_at) == 0) {
        c->r.corruptions_fixed++;
        say(c, "Repairing: cleared the entry of %s", what);
    }
}

static void corrupt(struct checker *c, uint64_t entry_at, const char *what,
                    const char *why)
{
    c->r.corruptions++;
    say(c, "ERROR %s %s", what, why);
    repair(c, entry_at, what);
}

/* The same rules that reads and writes follow (trust.c), on this file. */
static const char *cluster_problem(struct checker *c, uint64_t entry,
                                   uint64_t guest)
{
    struct qcowkit_image *img = c->img;

    if (entry & QCOW_COMPRESSED) {
        uint64_t offset = entry & img->offset_mask;
        uint64_t size =
            (entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
        if (size == 0)
            return "has compressed size 0";
        return qk_cluster_problem(img, offset, size, c->file_size, guest);
    }
    if (entry & (img->cluster_size - 1))
        return "is not aligned to the cluster size";
    return qk_cluster_problem(img, entry, img->cluster_size, c->file_size,
                              guest);
}

static bool inflates(struct checker *c, uint64_t entry, uint64_t guest)
{
    char saved[1024];
    bool ok;

    /* A failed inflation is a finding here, not this call's error. */
    snprintf(saved, sizeof saved, "%s", qk_errmsg());
    ok = qk_inflate_cluster(c->img, entry, guest, c->inflated) == 0;
    qk_error(0, "%s", saved);
    return ok;
}

static void count_cluster(struct checker *c, uint64_t entry)
{
    c->r.allocated_clusters++;
    if (entry & QCOW_COMPRESSED) {
        c->r.compressed_clusters++;
        return;
    }
    if (c->prev_host && entry != c->prev_host)
        c->r.fragmented_clusters++;
    c->prev_host = entry + c->img->cluster_size;
}

static void remember_pack(struct checker *c, uint64_t offset, uint64_t len)
{
    if (c->pack_count == c->pack_cap) {
        size_t cap = c->pack_cap ? c->pack_cap * 2 : 1024;
        uint64_t *p = realloc(c->packs, cap * sizeof *p);
        if (!p) {
            c->pack_err =
                qk_error(-ENOMEM, "%s: no memory for the check", c->img->name);
            return;
        }
        c->packs = p;
        c->pack_cap = cap;
    }
    c->packs[c->pack_count++] = offset << c->img->cluster_bits | len;
}

static void check_entry(struct checker *c, uint64_t entry, uint64_t entry_at,
                        uint64_t guest)
{
    struct qcowkit_image *img = c->img;
    bool compressed = entry & QCOW_COMPRESSED;
    uint64_t offset = compressed ? entry & img->offset_mask : entry;
    uint64_t len = img->cluster_size;
    const char *why = cluster_problem(c, entry, guest);
    char what[160];

    snprintf(what, sizeof what, "%scluster at offset %llu (guest offset %llu)",
             compressed ? "compressed " : "", (unsigned long long)offset,
             (unsigned long long)guest);
    if (c->first_pass)
        count_cluster(c, entry);
    if (why) {
        if (c->first_pass)
            corrupt(c, entry_at, what, why);
        return;
    }
    if (compressed) {
        len = (entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
        if (c->first_pass && !inflates(c, entry, guest)) {
            corrupt(c, entry_at, what, "does not inflate to a whole cluster");
            return;
        }
    }
    if (compressed && c->first_pass)
        remember_pack(c, offset, len);
    /* Tables and metadata were ruled out above: a clash is another
     * cluster, walked earlier, which keeps it. */
    if (!mark(c, offset, len, compressed))
        corrupt(c, entry_at, what, "is also used by another entry");
}

static void describe_table(uint64_t l1_index, uint64_t offset, char *what,
                           size_t len)
{
    snprintf(what, len, "L2 table at offset %llu (L1 entry %llu)",
             (unsigned long long)offset, (unsigned long long)l1_index);
}

/*
 * Tables the handle refuses (trust.c: unsound, or clashing with a table
 * kept before them) are blamed once and never walked, so a repair never
 * writes into a table that is not the one its entries belong to.
 */
static int blame_table(void *opaque, uint64_t l1_index, uint64_t offset)
{
    struct checker *c = opaque;
    struct qcowkit_image *img = c->img;
    const char *why;
    char what[128];

    if (!qk_table_refused(img, l1_index, offset))
        return 0;
    why = qk_table_problem(img, offset, img->trust.trusted_end);
    describe_table(l1_index, offset, what, sizeof what);
    corrupt(c, img->header.l1_table_offset + l1_index * 8, what,
            why ? why : "overlaps another L2 table");
    return 0;
}

static int blame_tables(struct checker *c)
{
    return qk_l1_scan(c->img, 0, c->img->l1_entries, blame_table, c);
}

/* Kept tables are disjoint from each other and the metadata. */
static int mark_table(void *opaque, uint64_t l1_index, uint64_t offset)
{
    struct checker *c = opaque;

    if (!qk_table_refused(c->img, l1_index, offset))
        mark(c, offset, (uint64_t)c->img->l2_entries * 8, true);
    return 0;
}

static int walk_table(void *opaque, uint64_t l1_index, uint64_t offset)
{
    struct checker *c = opaque;
    struct qcowkit_image *img = c->img;
    uint64_t *entries = (uint64_t *)c->raw_table;
    int err;

    if (qk_table_refused(img, l1_index, offset))
        return 0;
    err = qk_read(img->io, c->raw_table, (size_t)img->l2_entries * 8, offset);
    for (uint32_t j = 0; err == 0 && j < img->l2_entries; j++)
        entries[j] = qk_be64(c->raw_table + (size_t)j * 8);
    /* Entries past the trusted end that this handle did not write. */
    if (err == 0)
        err = qk_trust_first_load(img, l1_index, offset, entries);
    for (uint32_t j = 0; err == 0 && j < img->l2_entries; j++) {
        uint64_t guest = (l1_index << (img->cluster_bits + img->l2_bits)) |
                         ((uint64_t)j << img->cluster_bits);
        if (entries[j])
            check_entry(c, entries[j], offset + (uint64_t)j * 8, guest);
    }
    return err;
}

/*
 * Space is given back only while every corruption found so far was
 * cleared: with untrusted tables left, "unreferenced" proves nothing.
 */
static bool leak_repair_allowed(const struct checker *c)
{
    return (c->flags & QCOWKIT_CHECK_REPAIR_LEAKS) &&
           c->r.corruptions == c->r.corruptions_fixed;
}

/* Give back a run of leaked clusters, if asked to. */
static void give_back(struct checker *c, uint64_t offset, uint64_t len)
{
    struct qcowkit_image *img = c->img;

    say(c, "Leaked clusters at offset %llu (%llu bytes)",
        (unsigned long long)offset, (unsigned long long)len);
    if (!leak_repair_allowed(c))
        return;
    if (qk_io_discard(img->io, offset, len) == 0 ||
        offset >= c->r.image_end_offset) {
        c->r.leaks_fixed += len / img->cluster_size;
        say(c, "Repairing: gave back %llu bytes at offset %llu",
            (unsigned long long)len, (unsigned long long)offset);
    }
}

/*
 * Where the hole of the storage holding the whole cluster at offset ends
 * (cluster aligned, past offset), or 0 if the cluster may hold data.  One
 * query per run of data or hole: a hole is never stepped through.
 */
static uint64_t hole_after(struct checker *c, uint64_t offset)
{
    uint64_t cs = c->img->cluster_size, length;
    bool hole;

    if (offset >= c->data_start && offset < c->data_end)
        return 0;
    if (offset < c->hole_start || offset >= c->hole_end) {
        if (qk_io_extent(c->img->io, offset, &length, &hole) < 0) {
            c->data_start = offset; /* cannot tell: data to the end */
            c->data_end = UINT64_MAX;
            return 0;
        }
        if (!hole) {
            c->data_start = offset;
            c->data_end = offset + length;
            return 0;
        }
        c->hole_start = offset;
        c->hole_end = offset + length;
    }
    if (c->hole_end - offset < cs)
        return 0;
    return c->hole_end - c->hole_end % cs;
}

/*
 * An unreferenced cluster that reads as zeros holds nothing: a hole that
 * an earlier repair punched, or never written.  It is not a leak.
 */
static bool holds_data(struct checker *c, uint64_t offset)
{
    uint32_t cs = c->img->cluster_size;

    if (qk_read(c->img->io, c->inflated, cs, offset) < 0)
        return true;
    return c->inflated[0] || memcmp(c->inflated, c->inflated + 1, cs - 1);
}

static bool free_cluster(const struct checker *c, uint64_t at)
{
    uint64_t s0 = (at - c->win_start) / QCOW_SECTOR;

    for (uint64_t s = s0; s < s0 + c->img->cluster_size / QCOW_SECTOR; s++)
        if (bit(c->used, s) || bit(c->packed, s))
            return false;
    return true;
}

/* Whole clusters of the window that nothing marked are leaks. */
static void find_leaks(struct checker *c)
{
    uint64_t cs = c->img->cluster_size;
    uint64_t end = c->win_start + c->win_bytes;
    uint64_t run_start = 0, run_len = 0, skip;

    if (end > c->file_size)
        end = c->file_size;
    for (uint64_t at = c->win_start; at < end && end - at >= cs; at += cs) {
        bool leaked = false;
        skip = hole_after(c, at);
        if (skip == 0 && free_cluster(c, at))
            leaked = holds_data(c, at);
        if (leaked) {
            if (run_len == 0)
                run_start = at;
            run_len += cs;
            c->r.leaks++;
            continue;
        }
        if (run_len)
            give_back(c, run_start, run_len);
        run_len = 0;
        if (skip)
            at = (skip < end ? skip : end) - cs; /* past the hole */
    }
    if (run_len)
        give_back(c, run_start, run_len);
}

/* ---------------------------------------- compressed streams sharing bytes */

/*
 * A stream that shares bytes with another.  Of streams that overlap, the
 * one earlier in the file is kept (as for tables); of identical ones, the
 * first walked.
 */
struct clash {
    uint64_t pack;
    bool kept;  /* this stream's bytes are kept ... */
    bool taken; /* ... by the first entry walked */
};

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sort the streams; return those that lose bytes or are duplicated. */
static struct clash *find_clashes(struct checker *c, size_t *count)
{
    uint32_t bits = c->img->cluster_bits;
    uint64_t mask = (UINT64_C(1) << bits) - 1, kept_end = 0;
    struct clash *out = NULL;
    size_t n = 0, cap = 0;

    qsort(c->packs, c->pack_count, sizeof *c->packs, by_u64);
    for (size_t i = 0, j; i < c->pack_count; i = j) {
        uint64_t at = c->packs[i] >> bits;
        bool kept = at >= kept_end;
        for (j = i + 1; j < c->pack_count && c->packs[j] == c->packs[i]; j++)
            ;
        if (kept)
            kept_end = at + (c->packs[i] & mask);
        if (kept && j - i == 1)
            continue;
        if (n == cap) {
            struct clash *grown;
            cap = cap ? cap * 2 : 64;
            grown = realloc(out, cap * sizeof *out);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        out[n++] = (struct clash){c->packs[i], kept, false};
    }
    *count = n;
    return out ? out : calloc(1, sizeof *out);
}

static struct clash *clash_of(struct clash *cl, size_t n, uint64_t pack)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cl[mid].pack < pack)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && cl[lo].pack == pack ? &cl[lo] : NULL;
}

struct clash_walk {
    struct checker *c;
    struct clash *cl;
    size_t n;
};

/* Blame every compressed entry of one table that does not keep bytes. */
static int blame_table_clashes(void *opaque, uint64_t i, uint64_t offset)
{
    struct clash_walk *w = opaque;
    struct checker *c = w->c;
    struct qcowkit_image *img = c->img;
    int err;

    if (qk_table_refused(img, i, offset))
        return 0;
    err = qk_read(img->io, c->raw_table, (size_t)img->l2_entries * 8, offset);
    for (uint32_t j = 0; err == 0 && j < img->l2_entries; j++) {
        uint64_t e = qk_be64(c->raw_table + (size_t)j * 8);
        uint64_t guest = (i << (img->cluster_bits + img->l2_bits)) |
                         ((uint64_t)j << img->cluster_bits);
        uint64_t off = e & img->offset_mask;
        uint64_t len =
            (e >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
        struct clash *hit;
        char what[160];
        if (!(e & QCOW_COMPRESSED) || cluster_problem(c, e, guest))
            continue;
        hit = clash_of(w->cl, w->n, off << img->cluster_bits | len);
        if (!hit || (hit->kept && !hit->taken)) {
            if (hit)
                hit->taken = true;
            continue;
        }
        snprintf(what, sizeof what,
                 "compressed cluster at offset %llu (guest offset %llu)",
                 (unsigned long long)off, (unsigned long long)guest);
        corrupt(c, offset + (uint64_t)j * 8, what,
                "shares bytes with another compressed cluster");
    }
    return err;
}

/* Walk the tables again and blame every entry that does not keep bytes. */
static int blame_clashes(struct checker *c, struct clash *cl, size_t n)
{
    struct clash_walk w = {c, cl, n};

    return qk_l1_scan(c->img, 0, c->img->l1_entries, blame_table_clashes, &w);
}

/*
 * Compressed streams may share sectors but never bytes: QEMU overwrites
 * a compressed cluster in place, so two entries on the same bytes could
 * corrupt each other.  Costs 8 bytes per compressed cluster.
 */
static int check_packs(struct checker *c)
{
    struct clash *cl;
    size_t n;
    int err = c->pack_err;

    if (err < 0 || c->pack_count < 2)
        return err;
    cl = find_clashes(c, &n);
    if (!cl)
        err = qk_error(-ENOMEM, "%s: no memory for the check", c->img->name);
    else if (n)
        err = blame_clashes(c, cl, n);
    free(cl);
    return err;
}

static int check_window(struct checker *c)
{
    struct qcowkit_image *img = c->img;
    int err = 0;

    memset(c->used, 0, c->win_sectors / 8);
    memset(c->packed, 0, c->win_sectors / 8);
    c->prev_host = 0;
    c->next_ref = UINT64_MAX;
    mark_metadata(c);
    err = qk_l1_scan(img, 0, img->l1_entries, mark_table, c);
    if (err == 0)
        err = qk_l1_scan(img, 0, img->l1_entries, walk_table, c);
    /* The first pass saw every stream: settle clashes before leaks. */
    if (err == 0 && c->first_pass)
        err = check_packs(c);
    if (err == 0)
        find_leaks(c);
    return err;
}

/* After a repair the tables on disk changed: read them again. */
static void reload(struct qcowkit_image *img)
{
    qk_cache_drop(img);
    qk_l1_forget(img);
    img->inflated_entry = 0;
}

/* Once nothing untrusted is left, everything in the file is trusted. */
static int retrust(struct checker *c)
{
    struct qcowkit_image *img = c->img;
    uint64_t size;
    int err = 0;

    if (c->r.corruptions_fixed)
        reload(img);
    if (c->r.corruptions == c->r.corruptions_fixed)
        err = qk_io_size(img->io, &size);
    if (err == 0 && c->r.corruptions == c->r.corruptions_fixed)
        err = qk_trust_build(img, size);
    return err;
}

/*
 * The next window worth a pass: where the file has data again or where
 * something is used, whichever comes first.  Windows of holes that no
 * entry points into hold neither leaks nor clashes: skipped.
 */
static uint64_t next_window(struct checker *c)
{
    uint64_t cs = c->img->cluster_size;
    uint64_t at = c->win_start + c->win_bytes, length, next;
    bool hole;

    if (at >= c->file_size)
        return at;
    next = c->next_ref;
    if (qk_io_extent(c->img->io, at, &length, &hole) < 0 || !hole)
        next = at;
    else if (at + length < next)
        next = at + length;
    if (next > c->file_size)
        return c->file_size;
    return next - next % cs; /* at is cluster aligned: next >= at */
}

static int run_passes(struct checker *c)
{
    struct qcowkit_image *img = c->img;
    int err = 0;

    err = blame_tables(c);
    c->first_pass = true;
    for (c->win_start = 0; err == 0 && c->win_start < c->file_size;
         c->win_start = next_window(c)) {
        err = check_window(c);
        c->first_pass = false;
    }
    /* A tail shorter than a cluster is slack, not a leak: left alone. */
    if (err == 0 && leak_repair_allowed(c) &&
        c->r.image_end_offset < c->file_size &&
        c->file_size - c->r.image_end_offset >= img->cluster_size)
        err = qk_io_truncate_to(img, c->r.image_end_offset);
    if (err == 0 && (c->flags & QCOWKIT_CHECK_REPAIR_LEAKS) &&
        !leak_repair_allowed(c) && c->r.leaks)
        say(c, "Leaks not repaired: the image has corruptions (repair them "
               "with -r all)");
    if (err == 0 && c->flags)
        err = qk_barrier(img);
    if (err == 0 && !img->read_only)
        err = retrust(c);
    return err;
}

static int check_locked(struct checker *c)
{
    struct qcowkit_image *img = c->img;
    int err;

    if (img->format != QCOWKIT_FORMAT_QCOW)
        return qk_error(-ENOTSUP, "%s: only qcow images can be checked",
                        img->name);
    if (c->flags && img->read_only)
        return qk_error(-EROFS, "%s: repairs need a writable image", img->name);
    err = img->read_only ? 0 : qk_writeback(img);
    if (err == 0)
        err = qk_trust_ready(img);
    if (err == 0)
        err = qk_io_size(img->io, &c->file_size);
    if (err < 0)
        return err;
    c->r.total_clusters =
        (img->virtual_size + img->cluster_size - 1) / img->cluster_size;
    c->win_bytes = qk_align_up(c->file_size, 8 * QCOW_SECTOR);
    if (c->win_bytes > MAX_WINDOW_BYTES || c->win_bytes == 0)
        c->win_bytes = c->win_bytes ? MAX_WINDOW_BYTES : 8 * QCOW_SECTOR;
    c->win_sectors = c->win_bytes / QCOW_SECTOR;
    c->used = calloc(1, c->win_sectors / 8);
    c->packed = calloc(1, c->win_sectors / 8);
    c->raw_table = malloc((size_t)img->l2_entries * 8);
    c->inflated = malloc(img->cluster_size);
    if (!c->used || !c->packed || !c->raw_table || !c->inflated)
        err = qk_error(-ENOMEM, "%s: no memory for the check", img->name);
    if (err == 0)
        err = run_passes(c);
    free(c->used);
    free(c->packed);
    free(c->raw_table);
    free(c->inflated);
    free(c->packs);
    return err;
}

/*
 * With the access lock held exclusively, always: a repair frees clusters
 * that no transfer may still be aimed at, and every check reads the
 * tables from the disk and rebuilds what the handle trusts, which no
 * read or write may see half done.
 */
int qk_check(struct qcowkit_image *img, unsigned flags,
             qcowkit_check_fn report_fn, void *opaque,
             struct qcowkit_check_report *report)
{
    struct checker c;
    int err;

    qk_assert_exclusive(img);
    memset(&c, 0, sizeof c);
    c.img = img;
    c.flags = flags;
    c.fn = report_fn;
    c.opaque = opaque;
    pthread_mutex_lock(&img->lock);
    err = check_locked(&c);
    pthread_mutex_unlock(&img->lock);
    c.r.struct_size = sizeof c.r;
    *report = c.r;
    return err;
}

int qcowkit_check(struct qcowkit_image *img, unsigned flags,
                  qcowkit_check_fn report_fn, void *opaque,
                  struct qcowkit_check_report *report)
{
    struct qcowkit_check_report full;
    int err = qk_abi_out_check(report, QK_CHECK_REPORT_MIN,
                               "qcowkit_check: struct qcowkit_check_report");

    if (err < 0)
        return err;
    qk_access_exclusive(img);
    err = qk_check(img, flags, report_fn, opaque, &full);
    qk_access_leave(img);
    qk_abi_out(report, &full, sizeof full);
    return err;
}
