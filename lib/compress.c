/* Compressed clusters: raw deflate streams, one cluster each. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#include "internal.h"

/* QEMU inflates with a 4 KiB window; deflate the same way so it can. */
#define QCOW_WINDOW_BITS 12

static bool inflate_exact(const uint8_t *in, size_t in_len, uint8_t *out,
                          size_t out_len)
{
    z_stream s;
    int ret;

    memset(&s, 0, sizeof s);
    /* The widest window reads every stream QEMU's narrower one reads. */
    if (inflateInit2(&s, -15) != Z_OK)
        return false;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)in_len;
    s.next_out = out;
    s.avail_out = (uInt)out_len;
    ret = inflate(&s, Z_FINISH);
    inflateEnd(&s);
    return (ret == Z_STREAM_END || ret == Z_BUF_ERROR) && s.avail_out == 0;
}

int qk_inflate_cluster(struct qcowkit_image *img, uint64_t entry,
                       uint64_t guest_offset, uint8_t *out)
{
    uint64_t offset = entry & img->offset_mask;
    size_t size = (entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
    uint8_t *in = malloc(size ? size : 1);
    int err;

    if (!in)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    err = qk_read(img->io, in, size, offset);
    if (err == 0 && !inflate_exact(in, size, out, img->cluster_size))
        err = qk_error(-EIO,
                       "%s: compressed cluster at offset %llu (guest offset "
                       "%llu) does not inflate to %u bytes",
                       img->name, (unsigned long long)offset,
                       (unsigned long long)guest_offset, img->cluster_size);
    free(in);
    return err;
}

/*
 * A deflater: libdeflate where its 32 KiB window cannot matter (clusters
 * of at most 4 KiB, so no match reaches further back than QEMU's 4 KiB
 * window), zlib with QEMU's window for larger clusters.  Made once, reused
 * for every cluster; one per thread.
 */
struct qcowkit_deflater {
    uint32_t cluster_size;
    struct libdeflate_compressor *fast;
    z_stream zs;
    bool zs_ready;
    uint8_t *padded; /* the last cluster of an unaligned image, padded */
};

void qcowkit_deflater_free(struct qcowkit_deflater *d)
{
    if (!d)
        return;
    if (d->fast)
        libdeflate_free_compressor(d->fast);
    if (d->zs_ready)
        deflateEnd(&d->zs);
    free(d->padded);
    free(d);
}

int qcowkit_deflater_new(struct qcowkit_image *img,
                         struct qcowkit_deflater **out)
{
    struct qcowkit_deflater *d = calloc(1, sizeof *d);
    bool ok;

    *out = NULL;
    if (img->format != QCOWKIT_FORMAT_QCOW) {
        free(d);
        return qk_error(-ENOTSUP,
                        "%s: only qcow images hold compressed "
                        "clusters",
                        img->name);
    }
    if (!d)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    d->cluster_size = img->cluster_size;
    d->padded = malloc(img->cluster_size);
    if (img->cluster_size <= 4096) {
        d->fast = libdeflate_alloc_compressor(6);
        ok = d->fast != NULL;
    } else {
        ok = deflateInit2(&d->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                          -QCOW_WINDOW_BITS, 9, Z_DEFAULT_STRATEGY) == Z_OK;
        d->zs_ready = ok;
    }
    if (!ok || !d->padded) {
        qcowkit_deflater_free(d);
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    }
    *out = d;
    return 0;
}

static size_t pack(struct qcowkit_deflater *d, const uint8_t *src, uint8_t *dst)
{
    size_t len = d->cluster_size;
    int ret;

    if (d->fast)
        return libdeflate_deflate_compress(d->fast, src, len, dst, len - 1);
    deflateReset(&d->zs);
    d->zs.next_in = (Bytef *)src;
    d->zs.avail_in = (uInt)len;
    d->zs.next_out = dst;
    d->zs.avail_out = (uInt)len - 1;
    ret = deflate(&d->zs, Z_FINISH);
    return ret == Z_STREAM_END ? len - 1 - d->zs.avail_out : 0;
}

int qcowkit_deflate_cluster(struct qcowkit_deflater *d, const void *src,
                            size_t len, void *out, size_t *out_len)
{
    const uint8_t *cluster = src;

    *out_len = 0;
    if (len == 0 || len > d->cluster_size)
        return qk_error(-EINVAL,
                        "qcowkit_deflate_cluster: %zu bytes for a cluster "
                        "of %u",
                        len, d->cluster_size);
    if (len < d->cluster_size) { /* the tail of an unaligned image */
        memcpy(d->padded, src, len);
        memset(d->padded + len, 0, d->cluster_size - len);
        cluster = d->padded;
    }
    *out_len = pack(d, cluster, out);
    return 0;
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
    img->data_unsynced = true;
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

int qcowkit_pwrite_deflated(struct qcowkit_image *img, const void *stream,
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

int qcowkit_pwrite_compressed(struct qcowkit_image *img, const void *buf,
                              size_t count, uint64_t offset)
{
    const uint8_t *p = buf;
    struct qcowkit_deflater *d;
    uint8_t *packed;
    int err = check_compressed_range(img, count, offset);

    if (err < 0 || img->format == QCOWKIT_FORMAT_RAW)
        return err < 0 ? err : qcowkit_pwrite(img, buf, count, offset);
    err = qcowkit_deflater_new(img, &d);
    if (err < 0)
        return err;
    packed = malloc(img->cluster_size);
    if (!packed)
        err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    while (err == 0 && count > 0) {
        size_t n = count < img->cluster_size ? count : img->cluster_size;
        size_t size;
        err = qcowkit_deflate_cluster(d, p, n, packed, &size);
        if (err == 0)
            err = size ? qcowkit_pwrite_deflated(img, packed, size, offset)
                       : qcowkit_pwrite(img, p, n, offset);
        p += n;
        count -= n;
        offset += n;
    }
    free(packed);
    qcowkit_deflater_free(d);
    return err;
}
