/* Deflating clusters into raw deflate streams that QEMU can inflate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

#include "internal.h"

/* QEMU inflates with a 4 KiB window; deflate the same way so it can. */
#define QCOW_WINDOW_BITS 12

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

void qk_deflater_free(struct qcowkit_deflater *d)
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

int qk_deflater_new(struct qcowkit_image *img, struct qcowkit_deflater **out)
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
        qk_deflater_free(d);
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

int qk_deflate_cluster(struct qcowkit_deflater *d, const void *src, size_t len,
                       void *out, size_t *out_len)
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

/* One deflate stream of a cluster of zeros, in *out (malloc'd): what grown
 * ranges and unmapped zeros over a backing file store. */
int qk_zero_stream(struct qcowkit_image *img, uint8_t **out, size_t *len)
{
    struct qcowkit_deflater *d;
    uint8_t *zeros = calloc(1, img->cluster_size);
    uint8_t *packed = malloc(img->cluster_size);
    int err = qk_deflater_new(img, &d);

    if (err == 0 && (!zeros || !packed))
        err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    if (err == 0)
        err = qk_deflate_cluster(d, zeros, img->cluster_size, packed, len);
    if (err == 0 && *len == 0)
        err = qk_error(-EIO, "%s: a cluster of zeros does not deflate",
                       img->name);
    qk_deflater_free(d);
    free(zeros);
    if (err < 0) {
        free(packed);
        return err;
    }
    *out = packed;
    return 0;
}
