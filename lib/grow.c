/*
 * Growing a qcow image: the new range must read as zeros, as in QEMU,
 * whatever the backing file holds there.  The format has no zero flag,
 * so each cluster of the new range that the backing chain reaches gets a
 * cluster of zeros of its own:
 *   - a compressed one (a deflate stream of a few bytes), so the cost is
 *     a few bytes per cluster of the range the backing file covers, plus
 *     the L2 tables that map them;
 *   - on encrypted images a normal, encrypted one (a whole cluster each):
 *     QEMU copies an inflated cluster of an encrypted image to a new
 *     cluster without encrypting it on a partial write, after which the
 *     rest of that cluster would decrypt to garbage.
 * Past the backing file's end unallocated clusters read zeros already.
 * Everything here is written and synced before the caller writes the
 * header with the new size, so a crash shows the old size or zeros.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool all_zero(const uint8_t *p, uint64_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static bool encrypted(const struct qcowkit_image *img)
{
    return img->header.crypt_method != 0;
}

/* Where the backing chain stops giving data, at most end. */
static uint64_t backing_reach(const struct qcowkit_image *img, uint64_t end)
{
    if (!img->backing)
        return 0;
    return img->backing->virtual_size < end ? img->backing->virtual_size : end;
}

/* A new normal cluster holding buf, for the cluster at guest start. */
static int write_new_cluster(struct qcowkit_image *img, uint64_t start,
                             const uint8_t *buf)
{
    uint64_t l1_index = start >> (img->cluster_bits + img->l2_bits);
    uint64_t host;
    int err;

    if (!qk_l2_get_or_make(img, l1_index, &err))
        return err < 0 ? err : -EIO;
    err = qk_allocate(img, img->cluster_size, img->cluster_size, &host);
    if (err == 0)
        err = qk_write_data(img, buf, img->cluster_size, host, start);
    if (err < 0)
        return err;
    qk_data_written(img);
    return qk_l2_set(img, start, host);
}

/*
 * The cluster across the old end (old not cluster-aligned): [old, end)
 * of it must read as zeros.  It may show the backing file there, or hold
 * old data (another writer, a header-only shrink).
 */
static int zero_straddle(struct qcowkit_image *img, uint8_t *buf, uint64_t old,
                         uint64_t end, bool *leaked)
{
    uint64_t start = old & ~(uint64_t)(img->cluster_size - 1);
    uint64_t head = old - start, entry;
    int err = qk_lookup(img, start, &entry);

    if (err < 0)
        return err;
    if (entry == 0) {
        if (backing_reach(img, end) <= old)
            return 0;
        memset(buf + head, 0, img->cluster_size - head);
        err = qk_read_backing(img, buf, head, start);
        return err < 0 ? err : write_new_cluster(img, start, buf);
    }
    if (entry & QCOW_COMPRESSED) {
        err = qk_check_compressed(img, entry, start);
        if (err == 0)
            err = qk_inflate_cluster(img, entry, start, buf);
        if (err < 0 || all_zero(buf + head, img->cluster_size - head))
            return err;
        memset(buf + head, 0, img->cluster_size - head);
        *leaked = true; /* the old stream: the caller gives it back */
        return write_new_cluster(img, start, buf);
    }
    /* Normal: zero the tail in place; nothing shows it before the header. */
    err = qk_check_normal(img, entry, start);
    if (err == 0)
        err = qk_read_data(img, buf, end - old, entry + head, old);
    if (err < 0 || all_zero(buf, end - old))
        return err;
    memset(buf, 0, end - old);
    qk_data_written(img);
    return qk_write_data(img, buf, end - old, entry + head, old);
}

/*
 * Zero clusters for [off, off + n clusters), all in one L2 table: one
 * write of n streams (or n encrypted clusters), then the entries.
 */
static int store_zero_run(struct qcowkit_image *img, const uint8_t *stream,
                          size_t len, uint64_t off, uint64_t n)
{
    uint64_t l1_index = off >> (img->cluster_bits + img->l2_bits);
    uint64_t each = encrypted(img) ? img->cluster_size : len, host;
    uint8_t *run;
    int err;

    if (!qk_l2_get_or_make(img, l1_index, &err))
        return err < 0 ? err : -EIO;
    err = qk_allocate(img, n * each, encrypted(img) ? img->cluster_size : 1,
                      &host);
    if (err < 0)
        return err;
    run = encrypted(img) ? calloc(1, img->cluster_size) : malloc(n * len);
    if (!run)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    for (uint64_t i = 0; !encrypted(img) && i < n; i++)
        memcpy(run + i * len, stream, len);
    if (!encrypted(img))
        err = qk_write(img->io, run, n * len, host);
    /* Each sector's IV is its guest offset: one cluster at a time. */
    for (uint64_t i = 0; encrypted(img) && err == 0 && i < n; i++)
        err = qk_write_data(img, run, img->cluster_size,
                            host + i * img->cluster_size,
                            off + i * img->cluster_size);
    free(run);
    qk_data_written(img);
    for (uint64_t i = 0; err == 0 && i < n; i++)
        err = qk_l2_set(img, off + (i << img->cluster_bits),
                        encrypted(img)
                            ? host + i * each
                            : (host + i * len) | QCOW_COMPRESSED |
                                  (uint64_t)len << (63 - img->cluster_bits));
    return err;
}

/* Zero clusters over [first, reach); first is cluster-aligned. */
static int zero_covered(struct qcowkit_image *img, uint64_t first,
                        uint64_t reach)
{
    uint64_t span = UINT64_C(1) << (img->cluster_bits + img->l2_bits);
    uint8_t *stream = NULL;
    size_t len = 0;
    int err = encrypted(img) ? 0 : qk_zero_stream(img, &stream, &len);

    for (uint64_t off = first; err == 0 && off < reach;) {
        uint64_t stop = (off & ~(span - 1)) + span;
        if (stop > reach)
            stop = qk_align_up(reach, img->cluster_size);
        err = store_zero_run(img, stream, len, off,
                             (stop - off) >> img->cluster_bits);
        off = stop;
    }
    free(stream);
    return err;
}

int qk_zero_grown(struct qcowkit_image *img, uint64_t old, uint64_t new_size,
                  bool *leaked)
{
    uint64_t first = qk_align_up(old, img->cluster_size);
    uint64_t reach = backing_reach(img, new_size);
    int err = 0;

    qk_assert_exclusive(img);
    if (first != old) {
        uint8_t *buf = malloc(img->cluster_size);
        if (!buf)
            return qk_error(-ENOMEM, "%s: out of memory", img->name);
        err = zero_straddle(img, buf, old, first < new_size ? first : new_size,
                            leaked);
        free(buf);
    }
    if (err == 0 && first < reach)
        err = zero_covered(img, first, reach);
    return err < 0 ? err : qk_writeback(img);
}
