/*
 * Writing zeros, and giving the space back where the caller allows it
 * (QCOWKIT_ZEROES_MAY_UNMAP).  qcow: whole clusters with nothing under
 * them are discarded; over a backing file each gets a compressed cluster
 * of zeros (as a grown overlay does, grow.c), and its old space is punched
 * once the new entry is durable (discard.c).  Partial clusters, and
 * encrypted overlays, get written zeros (rw.c).  raw: holes, or zeroed
 * ranges, or written zeros, whichever the backend can.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const uint8_t zero_sector[QCOW_SECTOR];

static void mark_written(struct qcowkit_image *img)
{
    pthread_mutex_lock(&img->lock);
    qk_data_written(img);
    pthread_mutex_unlock(&img->lock);
}

/*
 * raw: sector 0 of a probed image through its guard, then a hole (may
 * unmap) or a zeroed range, else written zeros: a device may refuse
 * either for its alignment.
 */
static int raw_zeroes(struct qcowkit_image *img, uint64_t count,
                      uint64_t offset, unsigned flags)
{
    int err = 0;

    if (img->probed && offset < QCOW_SECTOR && count > 0) {
        uint64_t head =
            QCOW_SECTOR - offset < count ? QCOW_SECTOR - offset : count;
        err = qk_raw_write_sector0(img, zero_sector, (size_t)head, offset);
        offset += head;
        count -= head;
    }
    if (err < 0 || count == 0)
        return err;
    if ((flags & QCOWKIT_ZEROES_MAY_UNMAP) &&
        img->io->ops.discard && /* no message when there is none */
        qk_io_discard(img->io, offset, count) == 0) {
        mark_written(img);
        return 0;
    }
    if (qk_io_zero_range(img->io, offset, count) == 0) {
        mark_written(img);
        return 0;
    }
    return qk_pwrite_zeroes(img, (size_t)count, offset);
}

/*
 * Does entry (of the cluster at guest) already hold this zero stream,
 * trusted?  Zeroing it again would only append a copy.  Lock held.
 */
static bool holds_zero_stream(struct qcowkit_image *img, uint64_t entry,
                              uint64_t guest, const uint8_t *stream, size_t len,
                              uint8_t *scratch)
{
    uint64_t start = entry & img->offset_mask;

    if (!(entry & QCOW_COMPRESSED) ||
        ((entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1)) !=
            len ||
        qk_cluster_problem(img, start, len, img->file_end, guest))
        return false;
    return qk_read(img->io, scratch, len, start) == 0 &&
           memcmp(scratch, stream, len) == 0;
}

/*
 * Compressed clusters of zeros for n clusters from guest offset at, all in
 * one table: one write of the streams the clusters lack, then their
 * entries; the old entries' space is noted for punching.  Lock held.
 */
static int store_zero_streams(struct qcowkit_image *img, const uint8_t *stream,
                              size_t len, uint64_t at, uint64_t n,
                              struct qk_punches *p)
{
    uint64_t l1_index = at >> (img->cluster_bits + img->l2_bits);
    uint32_t idx = (at >> img->cluster_bits) & (img->l2_entries - 1);
    size_t from = p->count ? p->count - 1 : 0; /* the last may grow */
    uint64_t host, m = 0, *table;
    /* The run of new streams, then room to read one old stream. */
    uint8_t *run = malloc(n * len + len);
    bool *lacks = calloc(n, sizeof *lacks);
    int err = 0;

    table = qk_l2_get_or_make(img, l1_index, &err);
    if (!table && err == 0)
        err = -EIO;
    if (err == 0 && (!run || !lacks))
        err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    for (uint64_t i = 0; err == 0 && i < n; i++) {
        uint64_t guest = at + (i << img->cluster_bits);
        lacks[i] = !holds_zero_stream(img, table[idx + i], guest, stream, len,
                                      run + n * len);
        if (lacks[i])
            memcpy(run + m++ * len, stream, len);
    }
    if (err == 0 && m > 0)
        err = qk_allocate(img, m * len, 1, &host);
    if (err == 0 && m > 0) {
        err = qk_write(img->io, run, m * len, host);
        qk_data_written(img);
    }
    table = err == 0 && m > 0 ? qk_l2_get(img, l1_index, &err) : NULL;
    for (uint64_t i = 0, j = 0; table && i < n; i++) {
        uint64_t guest = at + (i << img->cluster_bits);
        if (!lacks[i])
            continue;
        qk_punch_note(img, p, table[idx + i], guest);
        table[idx + i] = (host + j++ * len) | QCOW_COMPRESSED |
                         (uint64_t)len << (63 - img->cluster_bits);
        qk_trust_entry_set(img, guest >> img->cluster_bits);
    }
    free(run);
    free(lacks);
    if (err == 0 && m > 0 && !table)
        err = -EIO;
    if (err < 0 || m == 0)
        return err;
    qk_l2_mark_dirty(img, l1_index);
    return qk_punch_spare(img, p, from, table);
}

/* end, or the end of the last cluster if a shrink cut it off. */
static uint64_t within_size(const struct qcowkit_image *img, uint64_t end)
{
    uint64_t last = qk_align_up(img->virtual_size, img->cluster_size);
    return end < last ? end : last;
}

/* Zero clusters over [first, end), cluster-aligned, table by table. */
static int zero_clusters(struct qcowkit_image *img, uint64_t first,
                         uint64_t end)
{
    uint64_t span = UINT64_C(1) << (img->cluster_bits + img->l2_bits);
    struct qk_punches p;
    uint8_t *stream = NULL;
    size_t len = 0;
    int err = qk_punches_init(img, &p), fin;

    qk_assert_shared(img);
    if (err == 0)
        err = qk_zero_stream(img, &stream, &len);
    for (uint64_t at = first; err == 0 && at < end;) {
        uint64_t stop = (at & ~(span - 1)) + span;
        if (stop > end)
            stop = end;
        pthread_mutex_lock(&img->lock);
        err = store_zero_streams(img, stream, len, at,
                                 (stop - at) >> img->cluster_bits, &p);
        pthread_mutex_unlock(&img->lock);
        at = stop;
        if (err == 0 && at < end && qk_punches_full(img, &p)) {
            err = qk_punches_finish(img, &p);
            end = within_size(img, end);
        }
    }
    fin = p.ranges ? qk_punches_finish(img, &p) : 0;
    qk_punches_free(&p);
    free(stream);
    return err < 0 ? err : fin;
}

/* qcow, may unmap: whole clusters [first, end) that read as zeros after. */
static int unmap_clusters(struct qcowkit_image *img, uint64_t first,
                          uint64_t end)
{
    uint64_t reach, visible = end < img->virtual_size ? end : img->virtual_size;
    int err = 0;

    if (!img->backing)
        return qk_discard_clusters(img, first, end);
    /* Compressed clusters are plaintext.  end may be the last cluster's
     * end, past the virtual size: the zeros stop at the size. */
    if (img->header.crypt_method)
        return qk_pwrite_zeroes(img, (size_t)(visible - first), first);
    /* Past the backing file's end an unallocated cluster reads zeros. */
    reach = qk_align_up(img->backing->virtual_size, img->cluster_size);
    if (reach > first)
        err = zero_clusters(img, first, reach < end ? reach : end);
    end = within_size(img, end); /* a shrink may have run meanwhile */
    if (err == 0 && reach < end)
        err = qk_discard_clusters(img, reach > first ? reach : first, end);
    return err;
}

static int qcow_unmap_zeroes(struct qcowkit_image *img, size_t count,
                             uint64_t offset)
{
    uint64_t first, end, stop = offset + count;
    int err = 0;

    qk_whole_clusters(img, offset, count, &first, &end);
    if (first >= end)
        return qk_pwrite_zeroes(img, count, offset);
    if (offset < first)
        err = qk_pwrite_zeroes(img, (size_t)(first - offset), offset);
    if (err == 0)
        err = unmap_clusters(img, first, end);
    /* The punches let a shrink run: what is past its end is gone. */
    if (stop > img->virtual_size)
        stop = img->virtual_size;
    if (err == 0 && end < stop)
        err = qk_pwrite_zeroes(img, (size_t)(stop - end), end);
    return err;
}

static int pwrite_zeroes_flags(struct qcowkit_image *img, size_t count,
                               uint64_t offset, unsigned flags)
{
    int err;

    if (flags & ~QCOWKIT_ZEROES_MAY_UNMAP)
        return qk_error(-EINVAL, "%s: unknown zero-write flags 0x%x", img->name,
                        flags & ~QCOWKIT_ZEROES_MAY_UNMAP);
    err = qk_check_range(img, count, offset, true);
    if (err < 0 || count == 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_RAW)
        return raw_zeroes(img, count, offset, flags);
    if (!(flags & QCOWKIT_ZEROES_MAY_UNMAP))
        return qk_pwrite_zeroes(img, count, offset);
    return qcow_unmap_zeroes(img, count, offset);
}

int qcowkit_pwrite_zeroes_flags(struct qcowkit_image *img, size_t count,
                                uint64_t offset, unsigned flags)
{
    int err;

    qk_access_shared(img);
    err = pwrite_zeroes_flags(img, count, offset, flags);
    qk_access_leave(img);
    return err;
}

int qcowkit_pwrite_zeroes(struct qcowkit_image *img, size_t count,
                          uint64_t offset)
{
    int err;

    qk_access_shared(img);
    err = pwrite_zeroes_flags(img, count, offset, 0);
    qk_access_leave(img);
    return err;
}
