/*
 * Which references the library follows.  A table or cluster is trusted
 * only when it lies wholly inside the file as it was when the image was
 * opened (or last checked), overlaps no metadata and no kept L2 table,
 * and, for a normal cluster, is cluster-aligned.  Space allocated since
 * then belongs to this handle, so an entry pointing there is trusted only
 * if this handle wrote it: an entry found there the first time its table
 * is read is refused for good ("poisoned"), whatever the file grows to.
 *
 * The same rules decide what qcowkit_check blames, so a repair detaches
 * exactly what reads and writes refuse.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static uint64_t table_bytes(const struct qcowkit_image *img)
{
    return (uint64_t)img->l2_entries * 8;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

bool qk_hits_metadata(const struct qcowkit_image *img, uint64_t offset,
                      uint64_t len)
{
    const struct qk_header *h = &img->header;

    return overlaps(offset, len, 0, QCOW_HEADER_SIZE) ||
           (h->backing_file_offset &&
            overlaps(offset, len, h->backing_file_offset,
                     h->backing_file_size)) ||
           overlaps(offset, len, h->l1_table_offset, img->l1_entries * 8);
}

/* Does [offset, offset+len) overlap a kept L2 table?  Kept tables are
 * sorted and disjoint, so only the last one starting before the end can. */
bool qk_hits_table(const struct qcowkit_image *img, uint64_t offset,
                   uint64_t len)
{
    const struct qk_trust *t = &img->trust;
    uint64_t lo = 0, hi = t->table_count;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (t->kept[mid].offset < offset + len)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && t->kept[lo - 1].offset + table_bytes(img) > offset;
}

/* --------------------------------------------------------- bitmaps */

static bool bit_get(const uint8_t *map, uint64_t i)
{
    return map[i / 8] & (1u << (i % 8));
}

static void bit_put(uint8_t *map, uint64_t i, bool on)
{
    if (on)
        map[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        map[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

/* ------------------------------------------------- the poisoned set */

/*
 * Per L2 table with refused entries, one bit per entry: l2_entries / 8
 * bytes, found by open addressing over L1 indices stored plus one.
 */
static uint64_t map_slot(const uint64_t *keys, uint64_t cap, uint64_t l1_index)
{
    uint64_t i = (l1_index * UINT64_C(0x9e3779b97f4a7c15)) & (cap - 1);

    while (keys[i] && keys[i] != l1_index + 1)
        i = (i + 1) & (cap - 1);
    return i;
}

static int maps_grow(struct qcowkit_image *img)
{
    struct qk_trust *t = &img->trust;
    uint64_t cap = t->poison_cap ? t->poison_cap * 2 : 16;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint8_t **maps = calloc(cap, sizeof *maps);

    if (!keys || !maps) {
        free(keys);
        free(maps);
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    }
    for (uint64_t i = 0; i < t->poison_cap; i++) {
        if (!t->poison_keys[i])
            continue;
        uint64_t j = map_slot(keys, cap, t->poison_keys[i] - 1);
        keys[j] = t->poison_keys[i];
        maps[j] = t->poison_maps[i];
    }
    free(t->poison_keys);
    free(t->poison_maps);
    t->poison_keys = keys;
    t->poison_maps = maps;
    t->poison_cap = cap;
    return 0;
}

/* The refused-entry bits of a table, or NULL. */
static uint8_t *poison_map(const struct qcowkit_image *img, uint64_t l1_index)
{
    const struct qk_trust *t = &img->trust;

    if (!t->poison_count)
        return NULL;
    return t->poison_maps[map_slot(t->poison_keys, t->poison_cap, l1_index)];
}

static int add_poison_map(struct qcowkit_image *img, uint64_t l1_index,
                          uint8_t *map, uint64_t bits)
{
    struct qk_trust *t = &img->trust;
    uint64_t i;
    int err;

    if ((t->poison_tables + 1) * 2 > t->poison_cap) {
        err = maps_grow(img);
        if (err < 0)
            return err;
    }
    i = map_slot(t->poison_keys, t->poison_cap, l1_index);
    t->poison_keys[i] = l1_index + 1;
    t->poison_maps[i] = map;
    t->poison_tables++;
    t->poison_count += bits;
    return 0;
}

/* The handle gives guest_cluster an entry of its own: trust that one. */
void qk_trust_entry_set(struct qcowkit_image *img, uint64_t guest_cluster)
{
    uint8_t *map = poison_map(img, guest_cluster >> img->l2_bits);
    uint64_t i = guest_cluster & (img->l2_entries - 1);

    if (map && bit_get(map, i)) {
        bit_put(map, i, false);
        img->trust.poison_count--;
    }
}

static bool is_poisoned(const struct qcowkit_image *img, uint64_t guest)
{
    uint64_t cluster = guest >> img->cluster_bits;
    uint8_t *map = poison_map(img, cluster >> img->l2_bits);

    return map && bit_get(map, cluster & (img->l2_entries - 1));
}

/* ------------------------------------------------------ L2 tables */

const char *qk_table_problem(const struct qcowkit_image *img, uint64_t offset,
                             uint64_t file_size)
{
    if (offset & (QCOW_SECTOR - 1))
        return "is not aligned to 512 bytes";
    if (offset >= file_size || table_bytes(img) > file_size - offset)
        return "lies outside the file";
    if (qk_hits_metadata(img, offset, table_bytes(img)))
        return "overlaps the header or L1 table";
    return NULL;
}

/* The kept table at offset, or NULL. */
static struct qk_kept *kept_at(const struct qcowkit_image *img, uint64_t offset)
{
    const struct qk_trust *t = &img->trust;
    uint64_t lo = 0, hi = t->table_count;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (t->kept[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->table_count && t->kept[lo].offset == offset ? &t->kept[lo]
                                                               : NULL;
}

bool qk_table_refused(const struct qcowkit_image *img, uint64_t l1_index,
                      uint64_t offset)
{
    const struct qk_kept *k = kept_at(img, offset);

    return !k || k->l1_index != l1_index;
}

static int by_offset(const void *a, const void *b)
{
    const struct qk_kept *x = a, *y = b;

    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->l1_index < y->l1_index ? -1 : x->l1_index > y->l1_index;
}

/* Sort, and keep only the lowest L1 index of each offset: the others
 * lose to it whatever else the table holds. */
static void sort_unique(struct qk_trust *t)
{
    uint64_t n = 0;

    if (t->table_count == 0)
        return;
    qsort(t->kept, t->table_count, sizeof *t->kept, by_offset);
    for (uint64_t i = 0; i < t->table_count; i++)
        if (n == 0 || t->kept[i].offset != t->kept[n - 1].offset)
            t->kept[n++] = t->kept[i];
    t->table_count = n;
}

static int grow_kept(struct qcowkit_image *img)
{
    struct qk_trust *t = &img->trust;
    uint64_t cap = t->table_cap ? t->table_cap * 2 : 16;
    struct qk_kept *kept = realloc(t->kept, cap * sizeof *kept);

    if (!kept)
        return qk_error(-ENOMEM, "%s: no memory for the table index",
                        img->name);
    t->kept = kept;
    t->table_cap = cap;
    return 0;
}

static int add_table(struct qcowkit_image *img, uint64_t l1_index,
                     uint64_t offset, bool seen)
{
    struct qk_trust *t = &img->trust;
    int err = t->table_count == t->table_cap ? grow_kept(img) : 0;

    if (err < 0)
        return err;
    t->kept[t->table_count++] =
        (struct qk_kept){offset, (uint32_t)l1_index, seen};
    return 0;
}

/* One entry of the L1 table on disk: a candidate if its table is sound.
 * A full list is deduplicated first, so memory follows the distinct
 * places tables lie in the file, not the L1 table's size. */
static int add_candidate(void *opaque, uint64_t l1_index, uint64_t offset)
{
    struct qcowkit_image *img = opaque;
    struct qk_trust *t = &img->trust;

    if (qk_table_problem(img, offset, t->trusted_end))
        return 0;
    if (t->table_count == t->table_cap && t->table_cap >= 64) {
        sort_unique(t);
        if (t->table_count > t->table_cap / 2 && grow_kept(img) < 0)
            return -ENOMEM;
    }
    return add_table(img, l1_index, offset, false);
}

/* Keep, in file order, every sound table that starts past the last kept
 * one's end; the lower offset (then the lower L1 index) wins a clash. */
static void keep_disjoint(struct qcowkit_image *img)
{
    struct qk_trust *t = &img->trust;
    uint64_t kept_end = 0, n = 0;

    sort_unique(t);
    for (uint64_t i = 0; i < t->table_count; i++) {
        if (n && t->kept[i].offset < kept_end)
            continue;
        t->kept[n++] = t->kept[i];
        kept_end = t->kept[i].offset + table_bytes(img);
    }
    t->table_count = n;
}

void qk_trust_free(struct qcowkit_image *img)
{
    struct qk_trust *t = &img->trust;

    free(t->kept);
    for (uint64_t i = 0; i < t->poison_cap; i++)
        free(t->poison_maps[i]);
    free(t->poison_keys);
    free(t->poison_maps);
    memset(t, 0, sizeof *t);
}

void qk_trust_reset(struct qcowkit_image *img, uint64_t file_size)
{
    qk_trust_free(img);
    img->trust.trusted_end = file_size;
}

int qk_trust_build(struct qcowkit_image *img, uint64_t file_size)
{
    struct qk_trust *t = &img->trust;
    const struct qk_cache *c = &img->cache;
    int err;

    qk_trust_reset(img, file_size);
    err = qk_l1_scan(img, 0, img->l1_entries, add_candidate, img);
    if (err < 0) {
        qk_trust_reset(img, file_size);
        return err;
    }
    keep_disjoint(img);
    t->built = true;
    /* Cached tables were checked against the file just now (a rebuild
     * follows a clean check): what they hold past the old end is ours. */
    for (uint32_t i = 0; i < c->lru.used; i++) {
        struct qk_kept *k = kept_at(img, c->slots[i].offset);
        if (c->slots[i].l1_index != QK_NO_TABLE && k &&
            k->l1_index == c->slots[i].l1_index)
            k->seen = true;
    }
    return 0;
}

int qk_trust_ready(struct qcowkit_image *img)
{
    if (img->trust.built)
        return 0;
    return qk_trust_build(img, img->trust.trusted_end);
}

void qk_trust_table_gone(struct qcowkit_image *img, uint64_t l1_index,
                         uint64_t offset)
{
    struct qk_trust *t = &img->trust;
    struct qk_kept *k = kept_at(img, offset);

    if (!k || k->l1_index != l1_index)
        return;
    memmove(k, k + 1, (size_t)(t->kept + t->table_count - (k + 1)) * sizeof *k);
    t->table_count--;
}

/* A table this handle just placed at the end of the file. */
int qk_trust_new_table(struct qcowkit_image *img, uint64_t l1_index,
                       uint64_t offset)
{
    struct qk_trust *t = &img->trust;
    uint64_t at = t->table_count;
    int err = add_table(img, l1_index, offset, true);

    if (err < 0)
        return err;
    /* Allocations move forward, so this is the last one; if not, slide it
     * into place. */
    while (at > 0 && t->kept[at - 1].offset > offset) {
        struct qk_kept k = t->kept[at - 1];
        t->kept[at - 1] = t->kept[at];
        t->kept[at] = k;
        at--;
    }
    return 0;
}

/* The host bytes an entry covers. */
static void extent_of(const struct qcowkit_image *img, uint64_t entry,
                      uint64_t *start, uint64_t *len)
{
    if (entry & QCOW_COMPRESSED) {
        *start = entry & img->offset_mask;
        *len = (entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
    } else {
        *start = entry;
        *len = img->cluster_size;
    }
}

/*
 * The first time a table is read in this handle's life, every entry that
 * reaches past the trusted end was not written by this handle: refuse it
 * for good, before allocations grow the file over it.
 */
int qk_trust_first_load(struct qcowkit_image *img, uint64_t l1_index,
                        uint64_t offset, const uint64_t *entries)
{
    struct qk_trust *t = &img->trust;
    struct qk_kept *kept = kept_at(img, offset);
    uint8_t *map = NULL;
    uint64_t bits = 0;
    int err = 0;

    if (!kept || kept->l1_index != l1_index)
        return qk_error(-EIO, "%s: L2 table at offset %llu is not kept",
                        img->name, (unsigned long long)offset);
    if (kept->seen)
        return 0;
    for (uint32_t i = 0; i < img->l2_entries; i++) {
        uint64_t start, len;
        if (!entries[i])
            continue;
        extent_of(img, entries[i], &start, &len);
        if (start < t->trusted_end && len <= t->trusted_end - start)
            continue;
        if (!map && !(map = calloc(1, img->l2_entries / 8)))
            return qk_error(-ENOMEM, "%s: out of memory", img->name);
        bit_put(map, i, true);
        bits++;
    }
    if (map)
        err = add_poison_map(img, l1_index, map, bits);
    if (err < 0)
        free(map);
    else
        kept->seen = true;
    return err;
}

/* ------------------------------------------------------ data entries */

/*
 * Why a data cluster at [start, start+len) cannot be followed, or NULL.
 * file_size bounds it; past the trusted end only this handle's own
 * entries (not poisoned) are good.
 */
const char *qk_cluster_problem(const struct qcowkit_image *img, uint64_t start,
                               uint64_t len, uint64_t file_size, uint64_t guest)
{
    const struct qk_trust *t = &img->trust;

    if (start >= file_size || len > file_size - start)
        return "lies outside the file";
    if (start + len > t->trusted_end &&
        (start < t->trusted_end || is_poisoned(img, guest)))
        return "lies outside the file";
    if (qk_hits_metadata(img, start, len))
        return "overlaps the header or L1 table";
    if (qk_hits_table(img, start, len))
        return "overlaps an L2 table";
    return NULL;
}

int qk_check_normal(struct qcowkit_image *img, uint64_t entry,
                    uint64_t guest_offset)
{
    const char *why = NULL;

    if (entry & (img->cluster_size - 1))
        why = "is not aligned to the cluster size";
    else
        why = qk_cluster_problem(img, entry, img->cluster_size, img->file_end,
                                 guest_offset);
    if (!why)
        return 0;
    return qk_error(-EIO, "%s: cluster at offset %llu (guest offset %llu) %s",
                    img->name, (unsigned long long)entry,
                    (unsigned long long)guest_offset, why);
}

int qk_check_compressed(struct qcowkit_image *img, uint64_t entry,
                        uint64_t guest_offset)
{
    uint64_t offset, size;
    const char *why;

    extent_of(img, entry, &offset, &size);
    why = size == 0 ? "has size 0"
                    : qk_cluster_problem(img, offset, size, img->file_end,
                                         guest_offset);
    if (!why)
        return 0;
    return qk_error(-EIO,
                    "%s: compressed cluster at offset %llu (%llu bytes, "
                    "guest offset %llu) %s",
                    img->name, (unsigned long long)offset,
                    (unsigned long long)size, (unsigned long long)guest_offset,
                    why);
}
