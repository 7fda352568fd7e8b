/* Guest reads and writes, split into runs of clusters of one kind. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const uint8_t zero_cluster[65536];

int qk_check_range(struct qcowkit_image *img, size_t count, uint64_t offset,
                   bool write)
{
    if (offset > img->virtual_size || count > img->virtual_size - offset)
        return qk_error(-EINVAL,
                        "%s: request of %zu bytes at offset %llu is beyond "
                        "the end of the image (%llu bytes)",
                        img->name, count, (unsigned long long)offset,
                        (unsigned long long)img->virtual_size);
    if (write && img->read_only)
        return qk_error(-EROFS, "%s: image is opened read-only", img->name);
    if (img->format == QCOWKIT_FORMAT_QCOW && img->header.crypt_method &&
        !img->has_key)
        return qk_error(-EACCES, "%s: encrypted image: a key is needed",
                        img->name);
    return 0;
}

int qk_read_backing(struct qcowkit_image *img, void *buf, size_t count,
                    uint64_t offset)
{
    struct qcowkit_image *b = img->backing;
    size_t have = 0;
    int err;

    if (b && offset < b->virtual_size) {
        have =
            b->virtual_size - offset < count ? b->virtual_size - offset : count;
        qk_access_shared(b);
        err = qk_pread(b, buf, have, offset);
        qk_access_leave(b);
        if (err < 0)
            return err;
    }
    memset((uint8_t *)buf + have, 0, count - have);
    return 0;
}

static uint64_t cluster_start(const struct qcowkit_image *img, uint64_t off)
{
    return off & ~(uint64_t)(img->cluster_size - 1);
}

/* Bytes from offset to the end of its cluster, at most count. */
static uint64_t in_cluster(const struct qcowkit_image *img, uint64_t offset,
                           uint64_t count)
{
    uint64_t n = img->cluster_size - (offset & (img->cluster_size - 1));
    return n < count ? n : count;
}

static bool is_normal(uint64_t entry)
{
    return entry != 0 && !(entry & QCOW_COMPRESSED);
}

/*
 * Extend a run from offset while the next clusters continue it: all
 * unallocated, or normal and contiguous on the host.  Lock held.
 */
static int extend_run(struct qcowkit_image *img, uint64_t entry,
                      uint64_t offset, uint64_t count, uint64_t *run)
{
    uint64_t n = in_cluster(img, offset, count);
    uint64_t next_entry;
    int err;

    while (n < count) {
        err = qk_lookup(img, offset + n, &next_entry);
        if (err < 0)
            return err;
        if (entry == 0 ? next_entry != 0
                       : next_entry != entry + cluster_start(img, offset + n) -
                                           cluster_start(img, offset))
            break;
        if (entry != 0) {
            err = qk_check_normal(img, next_entry, offset + n);
            if (err < 0)
                return err;
        }
        n += in_cluster(img, offset + n, count - n);
    }
    *run = n;
    return 0;
}

/*
 * Compressed clusters from offset: whole ones as a run, read and inflated
 * after the mutex is let go, part of one through the handle's cache.
 * Called with the mutex held; returns the length read or an errno.
 */
static int64_t read_compressed(struct qcowkit_image *img, uint64_t entry,
                               uint8_t *buf, uint64_t count, uint64_t offset)
{
    struct qk_packed_run run;
    uint64_t n = in_cluster(img, offset, count);
    int err = qk_packed_run_find(img, entry, count, offset, &run);

    if (err == 0 && run.clusters == 0) {
        err = qk_check_compressed(img, entry, offset);
        if (err == 0)
            err = qk_read_compressed(img, entry, buf, n, offset);
    }
    pthread_mutex_unlock(&img->lock);
    if (err == 0 && run.clusters > 0) {
        n = (uint64_t)run.clusters * img->cluster_size;
        err = qk_packed_run_read(img, &run, buf);
    }
    return err < 0 ? err : (int64_t)n;
}

/* Read one run of like clusters; returns its length or a negative errno. */
static int64_t read_run(struct qcowkit_image *img, uint8_t *buf, uint64_t count,
                        uint64_t offset)
{
    uint64_t entry, n = 0;
    int err;

    pthread_mutex_lock(&img->lock);
    err = qk_lookup(img, offset, &entry);
    if (err == 0 && (entry & QCOW_COMPRESSED))
        return read_compressed(img, entry, buf, count, offset);
    if (err == 0 && entry)
        err = qk_check_normal(img, entry, offset);
    if (err == 0)
        err = extend_run(img, entry, offset, count, &n);
    pthread_mutex_unlock(&img->lock);
    if (err < 0)
        return err;
    /* Without the mutex: nothing frees space while the access lock is
     * held shared. */
    if (entry == 0)
        return (err = qk_read_backing(img, buf, n, offset)) < 0 ? err
                                                                : (int64_t)n;
    err = qk_read_data(img, buf, n, entry + (offset & (img->cluster_size - 1)),
                       offset);
    return err < 0 ? err : (int64_t)n;
}

int qk_pread(struct qcowkit_image *img, void *buf, size_t count,
             uint64_t offset)
{
    uint8_t *p = buf;
    int err = qk_check_range(img, count, offset, false);

    qk_assert_access(img);
    if (err < 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_RAW)
        return qk_read(img->io, buf, count, offset);
    while (count > 0) {
        int64_t n = read_run(img, p, count, offset);
        if (n < 0)
            return (int)n;
        p += n;
        count -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int qcowkit_pread(struct qcowkit_image *img, void *buf, size_t count,
                  uint64_t offset)
{
    int err;

    qk_access_shared(img);
    err = qk_pread(img, buf, count, offset);
    qk_access_leave(img);
    return err;
}

/* ------------------------------------------------------------- writing */

/*
 * The old contents of the cluster at start, for a partial overwrite:
 * the inflated cluster, the backing file's data, or zeros.
 */
static int old_contents(struct qcowkit_image *img, uint64_t entry,
                        uint64_t start, uint8_t *out)
{
    uint64_t visible;

    if (entry & QCOW_COMPRESSED) {
        int err = qk_check_compressed(img, entry, start);
        return err < 0 ? err : qk_inflate_cluster(img, entry, start, out);
    }
    visible = img->virtual_size - start < img->cluster_size
                  ? img->virtual_size - start
                  : img->cluster_size;
    memset(out + visible, 0, img->cluster_size - visible);
    return qk_read_backing(img, out, visible, start);
}

/* Write one newly allocated cluster that the request covers partly. */
static int write_partial(struct qcowkit_image *img, uint64_t entry,
                         uint64_t host, const uint8_t *buf, uint64_t n,
                         uint64_t offset)
{
    uint64_t start = cluster_start(img, offset);
    uint8_t *merged = malloc(img->cluster_size);
    int err;

    if (!merged)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    err = old_contents(img, entry, start, merged);
    if (err == 0) {
        memcpy(merged + (offset - start), buf, n);
        err = qk_write_data(img, merged, img->cluster_size, host, start);
    }
    free(merged);
    return err;
}

/* How many clusters from offset (within one L2 table) need new space. */
static uint64_t count_new(const struct qcowkit_image *img,
                          const uint64_t *table, uint64_t offset,
                          uint64_t count)
{
    uint32_t idx = (offset >> img->cluster_bits) & (img->l2_entries - 1);
    uint64_t n = 0;

    while (n < count && !is_normal(table[idx])) {
        n += in_cluster(img, offset + n, count - n);
        idx++;
    }
    return n;
}

/*
 * Give new clusters to [offset, offset+count), all inside one L2 table
 * and none holding a normal cluster: one contiguous host run, written
 * before the entries that point at it change.
 */
static int write_new_run(struct qcowkit_image *img, uint64_t l1_index,
                         const uint8_t *buf, uint64_t count, uint64_t offset)
{
    uint64_t first = cluster_start(img, offset);
    uint64_t clusters =
        (cluster_start(img, offset + count - 1) - first) / img->cluster_size +
        1;
    uint32_t idx = (offset >> img->cluster_bits) & (img->l2_entries - 1);
    uint64_t host, done = 0;
    uint64_t *table;
    int err;

    err = qk_allocate(img, clusters * img->cluster_size, img->cluster_size,
                      &host);
    while (err == 0 && done < count) {
        uint64_t at = offset + done;
        uint64_t n = in_cluster(img, at, count - done);
        uint64_t h = host + (cluster_start(img, at) - first);
        uint64_t entry;

        if (n == img->cluster_size) { /* whole clusters go straight out */
            while (done + n < count && count - done - n >= img->cluster_size)
                n += img->cluster_size;
            err = qk_write_data(img, buf + done, n, h, at);
        } else {
            err = qk_lookup(img, at, &entry);
            if (err == 0)
                err = write_partial(img, entry, h, buf + done, n, at);
        }
        done += n;
    }
    if (err < 0)
        return err;
    qk_data_written(img);
    table = qk_l2_get(img, l1_index, &err);
    if (!table)
        return err < 0 ? err : -EIO;
    for (uint64_t i = 0; i < clusters; i++) {
        table[idx + i] = host + i * img->cluster_size;
        qk_trust_entry_set(img, (first >> img->cluster_bits) + i);
    }
    qk_l2_mark_dirty(img, l1_index);
    return 0;
}

/*
 * Overwrite data in place in a run of normal clusters.  The lock is let go
 * for the transfer, except on encrypted images, whose partial sectors are
 * read, merged and rewritten and so must not interleave.  The data is
 * marked unsynced only once it has reached the backend: a flush running
 * during the transfer may sync and clear the mark before the data lands.
 */
static int write_existing(struct qcowkit_image *img, const uint8_t *buf,
                          uint64_t n, uint64_t entry, uint64_t offset)
{
    uint64_t host = entry + (offset & (img->cluster_size - 1));
    bool unlock = !img->header.crypt_method;
    int err;

    if (unlock)
        pthread_mutex_unlock(&img->lock);
    err = qk_write_data(img, buf, n, host, offset);
    if (unlock)
        pthread_mutex_lock(&img->lock);
    qk_data_written(img); /* even on error: some of it may have landed */
    return err;
}

/* Write inside one L2 table's span, with the lock held on entry/exit. */
static int write_in_table(struct qcowkit_image *img, const uint8_t *buf,
                          uint64_t count, uint64_t offset)
{
    uint64_t l1_index = offset >> (img->cluster_bits + img->l2_bits);
    uint64_t done = 0, n, entry;
    uint64_t *table;
    int err = 0;

    while (err == 0 && done < count) {
        table = qk_l2_get_or_make(img, l1_index, &err);
        if (!table)
            return err < 0 ? err : -EIO;
        entry =
            table[(offset + done) >> img->cluster_bits & (img->l2_entries - 1)];
        if (!is_normal(entry)) {
            n = count_new(img, table, offset + done, count - done);
            err = write_new_run(img, l1_index, buf + done, n, offset + done);
        } else {
            err = qk_check_normal(img, entry, offset + done);
            if (err == 0)
                err = extend_run(img, entry, offset + done, count - done, &n);
            if (err == 0)
                err = write_existing(img, buf + done, n, entry, offset + done);
        }
        done += n;
    }
    return err;
}

static uint64_t to_table_end(const struct qcowkit_image *img, uint64_t offset,
                             uint64_t count)
{
    uint64_t span = UINT64_C(1) << (img->cluster_bits + img->l2_bits);
    uint64_t n = span - (offset & (span - 1));
    return n < count ? n : count;
}

int qk_pwrite(struct qcowkit_image *img, const void *buf, size_t count,
              uint64_t offset)
{
    const uint8_t *p = buf;
    int err = qk_check_range(img, count, offset, true);

    qk_assert_access(img);
    if (err < 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_RAW && img->probed &&
        offset < QCOW_SECTOR && count > 0)
        return qk_raw_write_sector0(img, buf, count, offset);
    if (img->format == QCOWKIT_FORMAT_RAW) {
        /* Marked after the transfer, as in write_existing. */
        err = qk_write(img->io, buf, count, offset);
        pthread_mutex_lock(&img->lock);
        qk_data_written(img);
        pthread_mutex_unlock(&img->lock);
        return err;
    }
    while (err == 0 && count > 0) {
        uint64_t n = to_table_end(img, offset, count);
        pthread_mutex_lock(&img->lock);
        /* No shrink runs meanwhile: it waits for the access lock. */
        err = write_in_table(img, p, n, offset);
        pthread_mutex_unlock(&img->lock);
        p += n;
        count -= n;
        offset += n;
    }
    return err;
}

int qcowkit_pwrite(struct qcowkit_image *img, const void *buf, size_t count,
                   uint64_t offset)
{
    int err;

    qk_access_shared(img);
    err = qk_pwrite(img, buf, count, offset);
    qk_access_leave(img);
    return err;
}

/* Does this whole cluster already read as zeros without being written? */
static int reads_as_zero(struct qcowkit_image *img, uint64_t offset, bool *zero)
{
    uint64_t entry;
    int err;

    *zero = false;
    if (img->format != QCOWKIT_FORMAT_QCOW || img->backing)
        return 0;
    pthread_mutex_lock(&img->lock);
    err = qk_lookup(img, offset, &entry);
    pthread_mutex_unlock(&img->lock);
    *zero = err == 0 && entry == 0;
    return err;
}

int qk_pwrite_zeroes(struct qcowkit_image *img, size_t count, uint64_t offset)
{
    uint64_t piece = img->format == QCOWKIT_FORMAT_QCOW ? img->cluster_size
                                                        : sizeof zero_cluster;
    int err = qk_check_range(img, count, offset, true);

    while (err == 0 && count > 0) {
        uint64_t n = piece - (offset & (piece - 1));
        bool zero = false;
        if (n > count)
            n = count;
        if (n == img->cluster_size)
            err = reads_as_zero(img, offset, &zero);
        if (err == 0 && !zero)
            err = qk_pwrite(img, zero_cluster, n, offset);
        count -= n;
        offset += n;
    }
    return err;
}
