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
 * A deflater for one call of qcowkit_pwrite_compressed: libdeflate where
 * its 32 KiB window cannot matter (clusters of at most 4 KiB, so no match
 * reaches further back than QEMU's 4 KiB window), zlib with QEMU's window
 * for larger clusters.  Made once per call, reused for every cluster.
 */
struct packer {
    struct libdeflate_compressor *fast;
    z_stream zs;
    bool zs_ready;
};

static int packer_init(struct packer *p, uint32_t cluster_size)
{
    memset(p, 0, sizeof *p);
    if (cluster_size <= 4096) {
        p->fast = libdeflate_alloc_compressor(6);
        return p->fast ? 0 : -ENOMEM;
    }
    if (deflateInit2(&p->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                     -QCOW_WINDOW_BITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    p->zs_ready = true;
    return 0;
}

static void packer_free(struct packer *p)
{
    if (p->fast)
        libdeflate_free_compressor(p->fast);
    if (p->zs_ready)
        deflateEnd(&p->zs);
}

/* Deflate len bytes; the stream's length, or 0 if it does not shrink. */
static size_t packer_pack(struct packer *p, const uint8_t *src, size_t len,
                          uint8_t *dst)
{
    int ret;

    if (p->fast)
        return libdeflate_deflate_compress(p->fast, src, len, dst, len - 1);
    deflateReset(&p->zs);
    p->zs.next_in = (Bytef *)src;
    p->zs.avail_in = (uInt)len;
    p->zs.next_out = dst;
    p->zs.avail_out = (uInt)len - 1;
    ret = deflate(&p->zs, Z_FINISH);
    return ret == Z_STREAM_END ? len - 1 - p->zs.avail_out : 0;
}

/* Store one deflated cluster at the end of the file; lock held. */
static int store_compressed(struct qcowkit_image *img, const uint8_t *data,
                            size_t size, uint64_t offset)
{
    uint64_t l1_index = offset >> (img->cluster_bits + img->l2_bits);
    uint32_t idx = (offset >> img->cluster_bits) & (img->l2_entries - 1);
    uint64_t host, *table;
    int err;

    table = qk_l2_get_or_make(img, l1_index, &err);
    if (!table)
        return err < 0 ? err : -EIO;
    err = qk_allocate(img, size, 1, &host);
    if (err == 0)
        err = qk_write(img->io, data, size, host);
    if (err < 0)
        return err;
    img->data_unsynced = true;
    /* A new place, never the old cluster: a crash keeps the old data. */
    table = qk_l2_get(img, l1_index, &err);
    if (!table)
        return err < 0 ? err : -EIO;
    table[idx] =
        host | QCOW_COMPRESSED | (uint64_t)size << (63 - img->cluster_bits);
    qk_l2_mark_dirty(img, l1_index);
    return 0;
}

static int write_one(struct qcowkit_image *img, struct packer *packer,
                     const uint8_t *src, size_t n, uint64_t offset,
                     uint8_t *padded, uint8_t *packed)
{
    const uint8_t *cluster = src;
    size_t size;
    int err;

    if (n < img->cluster_size) { /* the tail of an unaligned image */
        memcpy(padded, src, n);
        memset(padded + n, 0, img->cluster_size - n);
        cluster = padded;
    }
    size = packer_pack(packer, cluster, img->cluster_size, packed);
    if (size == 0)
        return qcowkit_pwrite(img, src, n, offset);
    pthread_mutex_lock(&img->lock);
    err = store_compressed(img, packed, size, offset);
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qcowkit_pwrite_compressed(struct qcowkit_image *img, const void *buf,
                              size_t count, uint64_t offset)
{
    const uint8_t *p = buf;
    uint8_t *padded, *packed;
    struct packer packer;
    int err = qk_check_range(img, count, offset, true);

    if (err < 0 || img->format == QCOWKIT_FORMAT_RAW)
        return err < 0 ? err : qcowkit_pwrite(img, buf, count, offset);
    if (img->header.crypt_method)
        return qk_error(-ENOTSUP,
                        "%s: compressed writes to an encrypted image are "
                        "refused: the format would store them in plaintext",
                        img->name);
    if ((offset & (img->cluster_size - 1)) ||
        ((count & (img->cluster_size - 1)) &&
         offset + count != img->virtual_size))
        return qk_error(-EINVAL,
                        "%s: compressed writes need whole clusters of %u "
                        "bytes (got %zu bytes at offset %llu)",
                        img->name, img->cluster_size, count,
                        (unsigned long long)offset);
    padded = malloc(img->cluster_size);
    packed = malloc(img->cluster_size);
    if (!padded || !packed || packer_init(&packer, img->cluster_size) < 0) {
        free(padded);
        free(packed);
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    }
    while (err == 0 && count > 0) {
        size_t n = count < img->cluster_size ? count : img->cluster_size;
        err = write_one(img, &packer, p, n, offset, padded, packed);
        p += n;
        count -= n;
        offset += n;
    }
    packer_free(&packer);
    free(padded);
    free(packed);
    return err;
}
