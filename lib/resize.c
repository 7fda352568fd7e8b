/*
 * Changing what the header says: the virtual size and the backing file.
 * The header is one 48-byte write inside the first sector, so it lands
 * whole or not at all; everything it will point at is written and synced
 * before it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int write_header(struct qcowkit_image *img, const struct qk_header *h)
{
    uint8_t raw[QCOW_HEADER_SIZE];
    int err;

    qk_header_encode(h, raw);
    err = qk_barrier(img);
    if (err == 0)
        err = qk_write(img->io, raw, sizeof raw, 0);
    if (err == 0)
        err = qk_barrier(img);
    if (err == 0)
        img->header = *h;
    return err;
}

struct clearing {
    struct qcowkit_image *img;
    bool *cleared;
};

/* An L1 entry past the new end: the table it names falls off. */
static int clear_entry(void *opaque, uint64_t index, uint64_t entry)
{
    struct clearing *c = opaque;

    *c->cleared = true;
    qk_cache_forget(c->img, index);
    qk_trust_table_gone(c->img, index, entry);
    return qk_l1_set(c->img, index, 0);
}

/* Drop every mapping at or past size, so that growing again reads zeros. */
static int clear_beyond(struct qcowkit_image *img, uint64_t size,
                        uint64_t keep_entries, bool *cleared)
{
    uint64_t first_cluster =
        qk_align_up(size, img->cluster_size) >> img->cluster_bits;
    uint64_t last = keep_entries - 1;
    struct clearing c = {img, cleared};
    uint64_t *table;
    int err = 0;

    table = qk_l2_get(img, last, &err);
    if (err < 0)
        return err;
    if (table && (first_cluster >> img->l2_bits) == last) {
        for (uint64_t i = first_cluster & (img->l2_entries - 1);
             i < img->l2_entries; i++) {
            *cleared |= table[i] != 0;
            table[i] = 0;
        }
        qk_l2_mark_dirty(img, last);
    }
    /* Written back, every table is on disk: the scan sees them all. */
    err = qk_writeback(img);
    if (err == 0)
        err = qk_l1_scan(img, keep_entries, img->l1_entries, clear_entry, &c);
    return err;
}

/*
 * Room for a bigger L1 table at the end of the file.  The handle uses it
 * at once (tables made for the grown range publish into it), while the
 * header on disk keeps the old one until the new size is written.
 */
static int grow_l1(struct qcowkit_image *img, uint64_t entries)
{
    uint64_t offset;
    int err = qk_cache_grow(img, entries);

    if (err == 0)
        err =
            qk_allocate(img, qk_l1_bytes(entries), img->cluster_size, &offset);
    return err < 0 ? err : qk_l1_move(img, offset, entries);
}

/*
 * Grow: zero clusters where the backing file would show, a new L1 table
 * if needed, all synced; the header last.  *cleared: space was dropped
 * (stale entries past the old end, a replaced compressed cluster).
 */
static int grow_qcow(struct qcowkit_image *img, struct qk_header *h,
                     uint64_t entries, bool *cleared)
{
    uint64_t old_l1 = img->header.l1_table_offset;
    uint64_t old_entries = img->l1_entries;
    int err = clear_beyond(img, img->virtual_size, old_entries, cleared);

    if (err == 0 && entries > old_entries)
        err = grow_l1(img, entries);
    if (err == 0)
        err = qk_zero_grown(img, img->virtual_size, h->size, cleared);
    h->l1_table_offset = img->header.l1_table_offset;
    if (err == 0)
        err = write_header(img, h);
    if (err < 0) {
        if (img->header.l1_table_offset != old_l1) {
            qk_cache_drop(img);
            qk_l1_unmove(img, old_l1, old_entries);
        }
        return err;
    }
    return h->l1_table_offset != old_l1 ? qk_l1_wipe(img, old_l1, old_entries)
                                        : 0;
}

static int resize_qcow(struct qcowkit_image *img, uint64_t size, bool *cleared)
{
    struct qk_header h = img->header;
    uint64_t entries;
    int err;

    qk_assert_exclusive(img);
    h.size = qk_align_up(size, QCOW_SECTOR);
    err = qk_header_validate(&h, UINT64_MAX, img->name, &entries);
    if (err == 0)
        err = qk_writeback(img);
    if (err == 0 && h.size > img->virtual_size)
        err = grow_qcow(img, &h, entries, cleared);
    else if (err == 0) {
        err = clear_beyond(img, h.size, entries, cleared);
        if (err == 0)
            err = write_header(img, &h);
    }
    /* Once the header is written the handle follows it, even on error. */
    if (img->header.size == h.size) {
        img->virtual_size = h.size;
        qk_update_meta_end(img);
    }
    return err;
}

/* With the access lock held exclusively. */
static int resize_image(struct qcowkit_image *img, uint64_t size)
{
    uint64_t old_size = img->virtual_size;
    bool cleared = false;
    int err;

    if (img->format == QCOWKIT_FORMAT_RAW) {
        pthread_mutex_lock(&img->lock);
        err = qk_raw_truncate_guard(img, size);
        if (err == 0)
            err = qk_io_truncate_to(img, size);
        if (err == 0)
            img->virtual_size = size;
        pthread_mutex_unlock(&img->lock);
        return err;
    }
    /* The tail of a cluster cut in two must read as zeros if it grows back. */
    if (size < img->virtual_size &&
        (size & (img->cluster_size - 1) || size & (QCOW_SECTOR - 1))) {
        uint64_t start = qk_align_up(size, QCOW_SECTOR);
        uint64_t end = qk_align_up(size, img->cluster_size);
        if (end > img->virtual_size)
            end = img->virtual_size;
        if (start < end)
            err = qk_pwrite_zeroes(img, end - start, start);
        else
            err = 0;
        if (err < 0)
            return err;
    }
    pthread_mutex_lock(&img->lock);
    err = resize_qcow(img, size, &cleared);
    pthread_mutex_unlock(&img->lock);
    if (err == 0 && (size < old_size || cleared)) {
        /* What fell off is unreferenced now: give its space back. */
        struct qcowkit_check_report r;
        err = qk_check(img, QCOWKIT_CHECK_REPAIR_LEAKS, NULL, NULL, &r);
    }
    return err;
}

int qcowkit_resize(struct qcowkit_image *img, uint64_t size)
{
    int err;

    if (img->read_only)
        return qk_error(-EROFS, "%s: image is opened read-only", img->name);
    if (size == 0)
        return qk_error(-EINVAL, "%s: the new size must not be zero",
                        img->name);
    qk_access_exclusive(img);
    err = resize_image(img, size);
    qk_access_leave(img);
    return err;
}

/*
 * Beyond the old name, the bytes up to the L1 table are padding that a
 * compressed stream could use: take them only if they are zeros, which
 * no valid stream starts with.
 */
static int padding_free(struct qcowkit_image *img, uint64_t from, uint64_t to,
                        bool *free_bytes)
{
    uint8_t pad[8] = {0};
    int err = 0;

    *free_bytes = true;
    if (to > from && to - from <= sizeof pad)
        err = qk_read(img->io, pad, to - from, from);
    else if (to > from)
        *free_bytes = false;
    for (uint64_t i = 0; err == 0 && from + i < to; i++)
        *free_bytes &= pad[i] == 0;
    return err;
}

/* Where the new name can go: in place if it fits before the L1 table. */
static int place_name(struct qcowkit_image *img, size_t len, uint64_t *offset)
{
    const struct qk_header *h = &img->header;
    uint64_t room_end = h->l1_table_offset;
    uint64_t old_end = QCOW_HEADER_SIZE + h->backing_file_size;
    bool in_place = false;
    int err = 0;

    if ((h->backing_file_offset == QCOW_HEADER_SIZE ||
         h->backing_file_offset == 0) &&
        room_end >= QCOW_HEADER_SIZE && room_end - QCOW_HEADER_SIZE >= len &&
        room_end == qk_align_up(old_end, 8))
        err = padding_free(img, old_end, QCOW_HEADER_SIZE + len, &in_place);
    if (err < 0)
        return err;
    if (in_place) {
        *offset = QCOW_HEADER_SIZE;
        return 0;
    }
    return qk_allocate(img, len, 1, offset);
}

static int set_backing_locked(struct qcowkit_image *img, const char *name,
                              size_t len)
{
    struct qk_header h = img->header;
    uint64_t offset = 0;
    int err;

    qk_assert_exclusive(img);
    err = qk_writeback(img);

    if (err == 0 && len)
        err = place_name(img, len, &offset);
    if (err == 0 && len)
        err = qk_write(img->io, name, len, offset);
    if (err < 0)
        return err;
    h.backing_file_offset = offset;
    h.backing_file_size = (uint32_t)len;
    err = write_header(img, &h);
    if (err == 0) {
        if (len)
            memcpy(img->backing_file, name, len);
        img->backing_file[len] = '\0';
        qk_update_meta_end(img);
    }
    return err;
}

int qcowkit_set_backing(struct qcowkit_image *img, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    int err;

    if (img->read_only)
        return qk_error(-EROFS, "%s: image is opened read-only", img->name);
    if (img->format != QCOWKIT_FORMAT_QCOW)
        return qk_error(-ENOTSUP, "%s: only qcow images have a backing file",
                        img->name);
    if (len > QCOW_MAX_BACKING_NAME)
        return qk_error(-EINVAL,
                        "%s: backing file name of %zu bytes exceeds %u",
                        img->name, len, QCOW_MAX_BACKING_NAME);
    err = qk_refuse_self_backing(img->name, name, img->io);
    if (err < 0)
        return err;
    qk_access_exclusive(img);
    pthread_mutex_lock(&img->lock);
    err = set_backing_locked(img, name, len);
    pthread_mutex_unlock(&img->lock);
    qk_access_leave(img);
    return err;
}
