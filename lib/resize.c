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

/* Forget the cached table of l1_index, if any (it was written back). */
static void uncache(struct qcowkit_image *img, uint64_t l1_index)
{
    uint32_t slot = img->cache.slot_of[l1_index];

    if (slot == QK_NO_SLOT)
        return;
    img->cache.slot_of[l1_index] = QK_NO_SLOT;
    img->cache.slots[slot].l1_index = QK_NO_TABLE;
}

/* Drop every mapping at or past size, so that growing again reads zeros. */
static int clear_beyond(struct qcowkit_image *img, uint64_t size,
                        uint64_t keep_entries)
{
    uint64_t first_cluster =
        qk_align_up(size, img->cluster_size) >> img->cluster_bits;
    uint64_t last = keep_entries - 1;
    uint8_t zero[8] = {0};
    uint64_t *table;
    int err = 0;

    table = qk_l2_get(img, last, &err);
    if (err < 0)
        return err;
    if (table && (first_cluster >> img->l2_bits) == last) {
        for (uint64_t i = first_cluster & (img->l2_entries - 1);
             i < img->l2_entries; i++)
            table[i] = 0;
        qk_l2_mark_dirty(img, last);
    }
    err = qk_writeback(img);
    for (uint64_t i = keep_entries; err == 0 && i < img->l1_entries; i++) {
        if (!img->l1[i])
            continue;
        uncache(img, i);
        img->l1[i] = 0;
        err = qk_write(img->io, zero, sizeof zero,
                       img->header.l1_table_offset + i * 8);
    }
    return err;
}

/* A bigger L1 table, written at the end of the file before the header. */
static int grow_l1(struct qcowkit_image *img, struct qk_header *h,
                   uint64_t entries)
{
    uint64_t bytes = entries * 8, offset;
    uint64_t *l1 = realloc(img->l1, bytes);
    uint32_t *slot_of;
    uint8_t *raw;
    int err;

    if (!l1)
        return qk_error(-ENOMEM, "%s: no memory for the L1 table", img->name);
    img->l1 = l1;
    slot_of = realloc(img->cache.slot_of, entries * sizeof *slot_of);
    if (!slot_of)
        return qk_error(-ENOMEM, "%s: no memory for the L1 table", img->name);
    img->cache.slot_of = slot_of;
    err = qk_cache_grow(img, entries);
    if (err == 0)
        err = qk_trust_grow(img, entries);
    if (err < 0)
        return err;
    for (uint64_t i = img->l1_entries; i < entries; i++) {
        l1[i] = 0;
        slot_of[i] = QK_NO_SLOT;
    }
    raw = calloc(1, qk_align_up(bytes, QCOW_SECTOR));
    if (!raw)
        return qk_error(-ENOMEM, "%s: no memory for the L1 table", img->name);
    for (uint64_t i = 0; i < img->l1_entries; i++)
        qk_put_be64(raw + i * 8, l1[i]);
    err = qk_allocate(img, qk_align_up(bytes, QCOW_SECTOR), img->cluster_size,
                      &offset);
    if (err == 0)
        err = qk_write(img->io, raw, qk_align_up(bytes, QCOW_SECTOR), offset);
    free(raw);
    if (err == 0)
        h->l1_table_offset = offset;
    return err;
}

/* The old L1 table, now unreferenced: zeros, so check sees no leak. */
static int wipe_old_l1(struct qcowkit_image *img, uint64_t offset,
                       uint64_t entries)
{
    static const uint8_t zeros[4096];
    uint64_t left = entries * 8;
    int err = 0;

    while (err == 0 && left > 0) {
        size_t n = left < sizeof zeros ? (size_t)left : sizeof zeros;
        err = qk_write(img->io, zeros, n, offset);
        offset += n;
        left -= n;
    }
    return err;
}

static int resize_qcow(struct qcowkit_image *img, uint64_t size)
{
    struct qk_header h = img->header;
    uint64_t old_l1 = h.l1_table_offset, old_entries = img->l1_entries;
    uint64_t entries;
    int err;

    qk_drain_transfers(img);
    h.size = qk_align_up(size, QCOW_SECTOR);
    err = qk_header_validate(&h, UINT64_MAX, img->name, &entries);
    if (err == 0)
        err = qk_writeback(img);
    if (err == 0 && h.size < img->virtual_size)
        err = clear_beyond(img, h.size, entries);
    if (err == 0 && entries > img->l1_entries)
        err = grow_l1(img, &h, entries);
    if (err == 0)
        err = write_header(img, &h);
    if (err == 0 && h.l1_table_offset != old_l1)
        err = wipe_old_l1(img, old_l1, old_entries);
    if (err < 0)
        return err;
    if (entries > img->l1_entries)
        img->l1_entries = entries;
    img->virtual_size = h.size;
    qk_update_meta_end(img);
    return 0;
}

int qcowkit_resize(struct qcowkit_image *img, uint64_t size)
{
    uint64_t old_size = img->virtual_size;
    int err;

    if (img->read_only)
        return qk_error(-EROFS, "%s: image is opened read-only", img->name);
    if (size == 0)
        return qk_error(-EINVAL, "%s: the new size must not be zero",
                        img->name);
    if (img->format == QCOWKIT_FORMAT_RAW) {
        pthread_mutex_lock(&img->lock);
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
            err = qcowkit_pwrite_zeroes(img, end - start, start);
        else
            err = 0;
        if (err < 0)
            return err;
    }
    pthread_mutex_lock(&img->lock);
    err = resize_qcow(img, size);
    pthread_mutex_unlock(&img->lock);
    if (err == 0 && size < old_size) {
        /* What fell off is unreferenced now: give its space back. */
        struct qcowkit_check_report r = {.struct_size = sizeof r};
        err = qcowkit_check(img, QCOWKIT_CHECK_REPAIR_LEAKS, NULL, NULL, &r);
    }
    return err;
}

/* Where the new name can go: in place if it fits before the L1 table. */
static int place_name(struct qcowkit_image *img, size_t len, uint64_t *offset)
{
    const struct qk_header *h = &img->header;
    uint64_t room_end = h->l1_table_offset;

    if (h->backing_file_offset == QCOW_HEADER_SIZE ||
        h->backing_file_offset == 0) {
        if (room_end >= QCOW_HEADER_SIZE &&
            room_end - QCOW_HEADER_SIZE >= len &&
            room_end ==
                qk_align_up(QCOW_HEADER_SIZE + h->backing_file_size, 8)) {
            *offset = QCOW_HEADER_SIZE;
            return 0;
        }
    }
    return qk_allocate(img, len, 1, offset);
}

static int set_backing_locked(struct qcowkit_image *img, const char *name,
                              size_t len)
{
    struct qk_header h = img->header;
    uint64_t offset = 0;
    int err = qk_writeback(img);

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
    pthread_mutex_lock(&img->lock);
    err = set_backing_locked(img, name, len);
    pthread_mutex_unlock(&img->lock);
    return err;
}
