/*
 * Giving clusters back: an L2 entry is cleared (the cluster then reads
 * from the backing file, or as zeros), and once that is durable the host
 * bytes it pointed at are punched out of the file.
 *
 * Why this is safe:
 *   - Order: the punch comes only after the cleared entry is written and
 *     synced, so after a crash an entry never points at punched space.
 *   - Reuse: the allocator only appends at file_end (qk_allocate), so
 *     punched space is never handed out again while the file is not cut;
 *     a cut (qk_io_truncate_to) between noting and punching a batch
 *     cancels its punches (the space is then left as a leak).
 *   - Late transfers: reads and in-place overwrites look a cluster up
 *     with the mutex and move the data without it, under the access lock
 *     held shared.  The punch runs with the access lock held
 *     exclusively, so every transfer that looked the cluster up before
 *     the entry was cleared has finished; later ones see it cleared.
 *   - What is punched: only bytes that a trusted entry (trust.c) covers:
 *     a whole normal cluster, or exactly a compressed stream's bytes
 *     (streams may share a sector, never a byte).  Bytes another entry of
 *     the same table still points at are spared.  Entries of other tables
 *     sharing the space would be a corruption qcowkit_check reports (and
 *     that the library never makes); they are not searched for, since
 *     that would cost a walk of every table per call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Ranges per batch: a few thousand, and always a whole table's worth. */
#define BATCH_RANGES 4096u

int qk_punches_init(struct qcowkit_image *img, struct qk_punches *p)
{
    memset(p, 0, sizeof *p);
    p->cap = BATCH_RANGES > 2 * ((size_t)img->l2_entries + 1)
                 ? BATCH_RANGES
                 : 2 * ((size_t)img->l2_entries + 1);
    p->ranges = malloc(p->cap * sizeof *p->ranges);
    p->extents = malloc(img->l2_entries * sizeof *p->extents);
    p->truncations = img->truncations;
    if (!p->ranges || !p->extents) {
        qk_punches_free(p);
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    }
    return 0;
}

void qk_punches_free(struct qk_punches *p)
{
    free(p->ranges);
    free(p->extents);
    memset(p, 0, sizeof *p);
}

bool qk_punches_full(const struct qcowkit_image *img,
                     const struct qk_punches *p)
{
    return p->cap - p->count < (size_t)img->l2_entries + 1; /* + the table */
}

/* The host bytes of a trusted entry, or false. */
static bool trusted_extent(struct qcowkit_image *img, uint64_t entry,
                           uint64_t guest, struct qk_range *r)
{
    if (entry & QCOW_COMPRESSED) {
        r->start = entry & img->offset_mask;
        r->len = (entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
        if (r->len == 0)
            return false;
    } else {
        r->start = entry;
        r->len = img->cluster_size;
        if (entry & (img->cluster_size - 1))
            return false;
    }
    return !qk_cluster_problem(img, r->start, r->len, img->file_end, guest);
}

static void add_range(struct qk_punches *p, struct qk_range r)
{
    struct qk_range *last = p->count ? &p->ranges[p->count - 1] : NULL;

    if (last && last->start + last->len == r.start)
        last->len += r.len;
    else if (p->count < p->cap) /* always: a full batch is finished first */
        p->ranges[p->count++] = r;
}

void qk_punch_note(struct qcowkit_image *img, struct qk_punches *p,
                   uint64_t entry, uint64_t guest)
{
    struct qk_range r;

    if (entry && trusted_extent(img, entry, guest, &r))
        add_range(p, r);
}

static int by_start(const void *a, const void *b)
{
    const struct qk_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Does r overlap one of the n sorted extents (each at most a cluster)? */
static bool overlaps_any(const struct qcowkit_image *img,
                         const struct qk_range *ext, size_t n,
                         const struct qk_range *r)
{
    uint64_t from =
        r->start > img->cluster_size ? r->start - img->cluster_size : 0;
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ext[mid].start < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && ext[lo].start < r->start + r->len; lo++)
        if (ext[lo].start + ext[lo].len > r->start)
            return true;
    return false;
}

int qk_punch_spare(struct qcowkit_image *img, struct qk_punches *p, size_t from,
                   const uint64_t *table)
{
    size_t n = 0, kept = from;

    if (p->count == from)
        return 0;
    for (uint32_t i = 0; i < img->l2_entries; i++) {
        if (!table[i])
            continue;
        if (table[i] & QCOW_COMPRESSED) {
            p->extents[n].start = table[i] & img->offset_mask;
            p->extents[n].len = (table[i] >> (63 - img->cluster_bits)) &
                                (img->cluster_size - 1);
        } else {
            p->extents[n].start = table[i];
            p->extents[n].len = img->cluster_size;
        }
        n++;
    }
    qsort(p->extents, n, sizeof *p->extents, by_start);
    for (size_t i = from; i < p->count; i++)
        if (!overlaps_any(img, p->extents, n, &p->ranges[i]))
            p->ranges[kept++] = p->ranges[i];
    p->count = kept;
    return 0;
}

/* Access lock held exclusively: punch every range of the batch. */
static int punch_all(struct qcowkit_image *img, struct qk_punches *p)
{
    int err = 0;

    /* A cut since the batch began may have handed the space out again. */
    if (img->truncations != p->truncations)
        return 0;
    for (size_t i = 0; err == 0 && i < p->count; i++) {
        err = qk_io_discard(img->io, p->ranges[i].start, p->ranges[i].len);
        /* No punching at all, or not this range (a block device refuses
         * one not aligned to its blocks): the space stays unused. */
        if (err == -EOPNOTSUPP)
            break;
        if (err == -EINVAL)
            err = 0;
    }
    if (err == -EOPNOTSUPP)
        err = 0;
    pthread_mutex_lock(&img->lock);
    qk_data_written(img); /* the next flush makes the holes durable too */
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qk_punches_finish(struct qcowkit_image *img, struct qk_punches *p)
{
    int err = 0;

    qk_assert_shared(img);
    if (p->count) {
        pthread_mutex_lock(&img->lock);
        /* A table another thread wrote back may not be synced yet: sync
         * whenever no table is left to write. */
        err = img->cache.dirty_count ? qk_writeback(img) : qk_barrier(img);
        pthread_mutex_unlock(&img->lock);
    }
    if (err == 0 && p->count) {
        qk_access_leave(img);
        qk_access_exclusive(img);
        err = punch_all(img, p);
        qk_access_leave(img);
        qk_access_shared(img);
    }
    p->count = 0;
    p->truncations = img->truncations;
    return err;
}

void qk_whole_clusters(const struct qcowkit_image *img, uint64_t offset,
                       uint64_t count, uint64_t *first, uint64_t *end)
{
    uint64_t stop = offset + count;

    *first = qk_align_up(offset, img->cluster_size);
    /* A cluster that ends at the virtual size is whole: nothing of it
     * past that is visible. */
    if (stop == img->virtual_size)
        *end = qk_align_up(stop, img->cluster_size);
    else
        *end = stop & ~(uint64_t)(img->cluster_size - 1);
}

/*
 * A table left with no entry goes too: its L1 entry is cleared at once
 * (the table then reads as all unallocated, as its entries do), and its
 * space is punched with the batch, once that is durable.
 */
static int drop_empty_table(struct qcowkit_image *img, uint64_t l1_index,
                            struct qk_punches *p)
{
    uint64_t freed;
    int err = qk_l2_drop_if_empty(img, l1_index, &freed);

    if (err == 0 && freed)
        add_range(p, (struct qk_range){freed, (uint64_t)img->l2_entries * 8});
    return err;
}

/* Clear the entries of n clusters from guest offset at, in one table. */
static int clear_in_table(struct qcowkit_image *img, uint64_t at, uint64_t n,
                          struct qk_punches *p)
{
    uint64_t l1_index = at >> (img->cluster_bits + img->l2_bits);
    uint32_t idx = (at >> img->cluster_bits) & (img->l2_entries - 1);
    size_t from = p->count ? p->count - 1 : 0; /* the last may grow */
    bool changed = false;
    uint64_t *table;
    int err;

    pthread_mutex_lock(&img->lock);
    table = qk_l2_get(img, l1_index, &err);
    for (uint64_t i = 0; table && i < n; i++) {
        uint64_t guest = at + (i << img->cluster_bits);
        if (!table[idx + i])
            continue;
        qk_punch_note(img, p, table[idx + i], guest);
        table[idx + i] = 0;
        qk_trust_entry_set(img, guest >> img->cluster_bits);
        changed = true;
    }
    if (changed) {
        qk_l2_mark_dirty(img, l1_index);
        err = qk_punch_spare(img, p, from, table);
    }
    if (changed && err == 0)
        err = drop_empty_table(img, l1_index, p);
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qk_discard_clusters(struct qcowkit_image *img, uint64_t first, uint64_t end)
{
    uint32_t shift = img->cluster_bits + img->l2_bits;
    struct qk_punches p;
    int err = qk_punches_init(img, &p), fin;

    qk_assert_shared(img);
    for (uint64_t at = first; err == 0 && at < end;) {
        uint64_t l1_index = at >> shift, next, stop;
        pthread_mutex_lock(&img->lock);
        err = qk_l2_next_table(img, l1_index, ((end - 1) >> shift) + 1, &next);
        pthread_mutex_unlock(&img->lock);
        if (err < 0 || next != l1_index) { /* no table: nothing to clear */
            at = err < 0 || next > (end - 1) >> shift ? end : next << shift;
            continue;
        }
        stop = (l1_index + 1) << shift;
        if (stop > end)
            stop = end;
        err = clear_in_table(img, at, (stop - at) >> img->cluster_bits, &p);
        at = stop;
        if (err == 0 && at < end && qk_punches_full(img, &p)) {
            err = qk_punches_finish(img, &p);
            /* A resize may have run meanwhile. */
            if (end > qk_align_up(img->virtual_size, img->cluster_size))
                end = qk_align_up(img->virtual_size, img->cluster_size);
        }
    }
    fin = qk_punches_finish(img, &p);
    qk_punches_free(&p);
    return err < 0 ? err : fin;
}

/* Raw images: punch the whole sectors of the range, if the backend can. */
static int raw_discard(struct qcowkit_image *img, uint64_t offset,
                       uint64_t count)
{
    uint64_t start = qk_align_up(offset, QCOW_SECTOR);
    uint64_t end = (offset + count) & ~(uint64_t)(QCOW_SECTOR - 1);
    int err;

    if (img->probed && start < QCOW_SECTOR)
        start = QCOW_SECTOR; /* the probed-raw guard keeps sector 0 */
    if (start >= end)
        return 0;
    err = qk_io_discard(img->io, start, end - start);
    if (err == -EOPNOTSUPP || err == -EINVAL) /* cannot: the data stays */
        return 0;
    pthread_mutex_lock(&img->lock);
    qk_data_written(img);
    pthread_mutex_unlock(&img->lock);
    return err;
}

static int discard(struct qcowkit_image *img, uint64_t offset, uint64_t count)
{
    uint64_t first, end;
    int err;

    err = qk_check_range(img, 0, offset, true);
    if (err == 0 && count > img->virtual_size - offset)
        err = qk_error(-EINVAL,
                       "%s: discard of %llu bytes at offset %llu is beyond "
                       "the end of the image (%llu bytes)",
                       img->name, (unsigned long long)count,
                       (unsigned long long)offset,
                       (unsigned long long)img->virtual_size);
    if (err < 0 || count == 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_RAW)
        return raw_discard(img, offset, count);
    qk_whole_clusters(img, offset, count, &first, &end);
    return first < end ? qk_discard_clusters(img, first, end) : 0;
}

int qcowkit_discard(struct qcowkit_image *img, uint64_t offset, uint64_t count)
{
    int err;

    qk_access_shared(img);
    err = discard(img, offset, count);
    qk_access_leave(img);
    return err;
}
