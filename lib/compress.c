/*
 * Writing compressed clusters: each stream goes to a new place at the
 * end of the file, never over the old cluster, so a crash keeps the old
 * data.  The deflater itself lives in deflate.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int qcowkit_deflater_new(struct qcowkit_image *img,
                         struct qcowkit_deflater **deflater)
{
    return qk_deflater_new(img, deflater);
}

void qcowkit_deflater_free(struct qcowkit_deflater *deflater)
{
    qk_deflater_free(deflater);
}

int qcowkit_deflate_cluster(struct qcowkit_deflater *deflater, const void *src,
                            size_t len, void *out, size_t *out_len)
{
    return qk_deflate_cluster(deflater, src, len, out, out_len);
}

/* Store one deflated cluster at the end of the file; lock held. */
static int store_compressed(struct qcowkit_image *img, const uint8_t *data,
                            size_t size, uint64_t offset)
{
    uint64_t l1_index = offset >> (img->cluster_bits + img->l2_bits);
    uint64_t host;
    int err;

    if (!qk_l2_get_or_make(img, l1_index, &err))
        return err < 0 ? err : -EIO;
    err = qk_allocate(img, size, 1, &host);
    if (err == 0)
        err = qk_write(img->io, data, size, host);
    if (err < 0)
        return err;
    qk_data_written(img);
    /* A new place, never the old cluster: a crash keeps the old data. */
    return qk_l2_set(img, offset,
                     host | QCOW_COMPRESSED |
                         (uint64_t)size << (63 - img->cluster_bits));
}

/* May [offset, offset+count) take compressed clusters? */
static int check_compressed_range(struct qcowkit_image *img, size_t count,
                                  uint64_t offset)
{
    int err = qk_check_range(img, count, offset, true);

    if (err < 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_QCOW && img->header.crypt_method)
        return qk_error(-ENOTSUP,
                        "%s: compressed writes to an encrypted image are "
                        "refused: the format would store them in plaintext",
                        img->name);
    if (img->format == QCOWKIT_FORMAT_QCOW &&
        ((offset & (img->cluster_size - 1)) ||
         ((count & (img->cluster_size - 1)) &&
          offset + count != img->virtual_size)))
        return qk_error(-EINVAL,
                        "%s: compressed writes need whole clusters of %u "
                        "bytes (got %zu bytes at offset %llu)",
                        img->name, img->cluster_size, count,
                        (unsigned long long)offset);
    return 0;
}

/* Store one stream; the caller holds the access lock. */
static int pwrite_deflated(struct qcowkit_image *img, const void *stream,
                           size_t len, uint64_t offset)
{
    size_t span;
    int err;

    if (img->format != QCOWKIT_FORMAT_QCOW)
        return qk_error(-ENOTSUP,
                        "%s: only qcow images hold compressed "
                        "clusters",
                        img->name);
    /* The cluster's part of the image: all of it but at the very end. */
    span = offset < img->virtual_size &&
                   img->virtual_size - offset < img->cluster_size
               ? (size_t)(img->virtual_size - offset)
               : img->cluster_size;
    err = check_compressed_range(img, span, offset);
    if (err == 0 && (len == 0 || len >= img->cluster_size))
        err = qk_error(-EINVAL,
                       "%s: a compressed cluster of %zu bytes does not fit "
                       "(1..%u)",
                       img->name, len, img->cluster_size - 1);
    if (err < 0)
        return err;
    pthread_mutex_lock(&img->lock);
    err = store_compressed(img, stream, len, offset);
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qcowkit_pwrite_deflated(struct qcowkit_image *img, const void *stream,
                            size_t len, uint64_t offset)
{
    int err;

    qk_access_shared(img);
    err = pwrite_deflated(img, stream, len, offset);
    qk_access_leave(img);
    return err;
}

/* Deflate and store clusters; the caller holds the access lock. */
static int pwrite_compressed(struct qcowkit_image *img, const uint8_t *buf,
                             size_t count, uint64_t offset)
{
    const uint8_t *p = buf;
    struct qcowkit_deflater *d;
    uint8_t *packed;
    int err = check_compressed_range(img, count, offset);

    if (err < 0 || img->format == QCOWKIT_FORMAT_RAW)
        return err < 0 ? err : qk_pwrite(img, buf, count, offset);
    err = qk_deflater_new(img, &d);
    if (err < 0)
        return err;
    packed = malloc(img->cluster_size);
    if (!packed)
        err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    while (err == 0 && count > 0) {
        size_t n = count < img->cluster_size ? count : img->cluster_size;
        size_t size;
        err = qk_deflate_cluster(d, p, n, packed, &size);
        if (err == 0)
            err = size ? pwrite_deflated(img, packed, size, offset)
                       : qk_pwrite(img, p, n, offset);
        p += n;
        count -= n;
        offset += n;
    }
    free(packed);
    qk_deflater_free(d);
    return err;
}

int qcowkit_pwrite_compressed(struct qcowkit_image *img, const void *buf,
                              size_t count, uint64_t offset)
{
    int err;

    qk_access_shared(img);
    err = pwrite_compressed(img, buf, count, offset);
    qk_access_leave(img);
    return err;
}
