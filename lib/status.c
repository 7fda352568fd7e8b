/* Block status: what one layer of the chain holds for a guest range. */
#include <errno.h>
#include <string.h>

#include "internal.h"

static unsigned flags_of(const struct qcowkit_image *img, uint64_t entry)
{
    if (entry == 0)
        return 0;
    if (entry & QCOW_COMPRESSED)
        return QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_COMPRESSED;
    if (img->header.crypt_method)
        return QCOWKIT_EXTENT_ALLOCATED;
    return QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_HOST_OFFSET;
}

static int check_entry(struct qcowkit_image *img, uint64_t entry,
                       uint64_t offset)
{
    if (entry == 0)
        return 0;
    if (entry & QCOW_COMPRESSED)
        return qk_check_compressed(img, entry, offset);
    return qk_check_normal(img, entry, offset);
}

/* Bytes from offset to the next boundary of a power-of-two unit. */
static uint64_t to_boundary(uint64_t offset, uint64_t unit)
{
    return unit - (offset & (unit - 1));
}

/* Does the cluster at offset continue the extent described so far? */
static bool continues(const struct qcowkit_image *img,
                      const struct qcowkit_extent *e, uint64_t entry,
                      uint64_t offset)
{
    if (flags_of(img, entry) != e->flags)
        return false;
    if (!(e->flags & QCOWKIT_EXTENT_HOST_OFFSET))
        return true;
    return entry == e->host_offset + (offset - e->offset) -
                        (offset & (img->cluster_size - 1));
}

/*
 * Scan the entries of one L2 table from at while they continue the extent;
 * returns the guest offset where the extent stops (or the table ends).
 */
static uint64_t scan_table(struct qcowkit_image *img, const uint64_t *table,
                           const struct qcowkit_extent *e, uint64_t at,
                           uint64_t end, bool *stopped)
{
    uint32_t idx = (at >> img->cluster_bits) & (img->l2_entries - 1);

    *stopped = false;
    for (; idx < img->l2_entries && at < end; idx++) {
        uint64_t entry = table[idx];
        if (at != e->offset && (!continues(img, e, entry, at) ||
                                check_entry(img, entry, at) < 0)) {
            *stopped = true;
            break;
        }
        at += to_boundary(at, img->cluster_size);
    }
    return at;
}

/* Move at past the L1 entries without a table, up to end at most. */
static int skip_to_table(struct qcowkit_image *img, uint64_t *at, uint64_t end)
{
    unsigned shift = img->cluster_bits + img->l2_bits;
    uint64_t from = (*at >> shift) + 1;
    uint64_t last = ((end - 1) >> shift) + 1, next;
    int err = qk_l2_next_table(img, from, last, &next);

    if (err < 0)
        return err;
    *at = next >= last ? end : next << shift;
    return 0;
}

static int qcow_status(struct qcowkit_image *img, uint64_t offset,
                       uint64_t count, struct qcowkit_extent *e)
{
    uint64_t at = offset, end = offset + count, entry;
    uint64_t scanned = 0, scanned_from;
    bool stopped = false;
    int err;

    err = qk_lookup(img, at, &entry);
    if (err == 0)
        err = check_entry(img, entry, at);
    if (err < 0)
        return err;
    e->flags = flags_of(img, entry);
    if (e->flags & QCOWKIT_EXTENT_HOST_OFFSET)
        e->host_offset = entry + (offset & (img->cluster_size - 1));
    while (at < end && !stopped) {
        uint64_t l1_index = at >> (img->cluster_bits + img->l2_bits);
        const uint64_t *table = qk_l2_get(img, l1_index, &err);
        if (err < 0 && at == offset)
            return err;
        if (err < 0) /* the next call reports it */
            break;
        if (!table) { /* no table: a hole up to the next table */
            if (e->flags != 0)
                break;
            err = skip_to_table(img, &at, end);
            if (err < 0 && at == offset)
                return err;
            if (err < 0)
                break;
            continue;
        }
        scanned_from = at;
        at = scan_table(img, table, e, at, end, &stopped);
        scanned += at - scanned_from;
        /* Entries cost a lookup each; gaps in the L1 table cost nothing. */
        if (scanned >= QCOWKIT_CHAIN_MAX_RUN)
            break;
    }
    e->length = (at < end ? at : end) - offset;
    return 0;
}

/* A raw image: data, or a hole of its storage (when the backend tells). */
static void raw_status(struct qcowkit_image *img, uint64_t offset,
                       uint64_t count, struct qcowkit_extent *e)
{
    uint64_t length;
    bool hole;

    e->length = count;
    e->flags = QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_HOST_OFFSET;
    e->host_offset = offset;
    if (qk_io_extent(img->io, offset, &length, &hole) < 0)
        return; /* the backend cannot tell: all data */
    if (hole)
        e->flags |= QCOWKIT_EXTENT_ZERO;
    if (length < count)
        e->length = length;
}

int qk_status_range(struct qcowkit_image *img, const char *what,
                    uint64_t offset, uint64_t count)
{
    if (offset < img->virtual_size && count <= img->virtual_size - offset &&
        count > 0)
        return 0;
    return qk_error(-EINVAL,
                    "%s: %s of %llu bytes at offset %llu is outside the "
                    "image (%llu bytes)",
                    img->name, what, (unsigned long long)count,
                    (unsigned long long)offset,
                    (unsigned long long)img->virtual_size);
}

int qk_block_status(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                    struct qcowkit_extent *extent)
{
    int err;

    qk_assert_access(img);
    memset(extent, 0, sizeof *extent);
    extent->offset = offset;
    err = qk_status_range(img, "block status", offset, count);
    if (err < 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_RAW) {
        raw_status(img, offset, count, extent);
        return 0;
    }
    pthread_mutex_lock(&img->lock);
    err = qcow_status(img, offset, count, extent);
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qcowkit_block_status(struct qcowkit_image *img, uint64_t offset,
                         uint64_t count, struct qcowkit_extent *extent)
{
    int err;

    qk_access_shared(img);
    err = qk_block_status(img, offset, count, extent);
    qk_access_leave(img);
    return err;
}
