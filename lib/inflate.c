/*
 * Reading compressed clusters: raw deflate streams, one cluster each,
 * inflated on the way to the guest.  The handle keeps the last cluster
 * inflated, keyed by its entry, for reads of part of a cluster; reads of
 * whole clusters fetch the streams of a run of them with one read and
 * inflate each straight into the caller's buffer, without the mutex.
 */
#include <errno.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

/* zlib's inflate accepts, as QEMU's does, a stream cut short once the
 * cluster is full and one that would run past it. */
static bool inflate_zlib(const uint8_t *in, size_t in_len, uint8_t *out,
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

/*
 * libdeflate is several times faster and gives the same bytes for every
 * stream that ends within the cluster, which is every stream QEMU writes;
 * the rare others (and a failed allocation: fast is NULL) go to zlib.
 */
static bool inflate_exact(struct libdeflate_decompressor *fast,
                          const uint8_t *in, size_t in_len, uint8_t *out,
                          size_t out_len)
{
    size_t used, got;

    if (fast &&
        libdeflate_deflate_decompress_ex(fast, in, in_len, out, out_len, &used,
                                         &got) == LIBDEFLATE_SUCCESS)
        return got == out_len;
    return inflate_zlib(in, in_len, out, out_len);
}

static size_t stream_size(const struct qcowkit_image *img, uint64_t entry)
{
    return (entry >> (63 - img->cluster_bits)) & (img->cluster_size - 1);
}

static int not_inflating(struct qcowkit_image *img, uint64_t host,
                         uint64_t guest_offset)
{
    return qk_error(-EIO,
                    "%s: compressed cluster at offset %llu (guest offset "
                    "%llu) does not inflate to %u bytes",
                    img->name, (unsigned long long)host,
                    (unsigned long long)guest_offset, img->cluster_size);
}

int qk_inflate_cluster(struct qcowkit_image *img, uint64_t entry,
                       uint64_t guest_offset, uint8_t *out)
{
    uint64_t offset = entry & img->offset_mask;
    size_t size = stream_size(img, entry);
    uint8_t *in = malloc(size ? size : 1);
    struct libdeflate_decompressor *fast = libdeflate_alloc_decompressor();
    int err;

    if (!in)
        err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    else
        err = qk_read(img->io, in, size, offset);
    if (err == 0 && !inflate_exact(fast, in, size, out, img->cluster_size))
        err = not_inflating(img, offset, guest_offset);
    if (fast)
        libdeflate_free_decompressor(fast);
    free(in);
    return err;
}

/* Read n bytes at guest offset from the compressed cluster entry. */
int qk_read_compressed(struct qcowkit_image *img, uint64_t entry, uint8_t *buf,
                       uint64_t n, uint64_t offset)
{
    int err = 0;

    if (img->inflated_entry != entry) {
        err = qk_inflate_cluster(img, entry, offset, img->inflated);
        img->inflated_entry = err == 0 ? entry : 0;
    }
    if (err == 0)
        memcpy(buf, img->inflated + (offset & (img->cluster_size - 1)), n);
    return err;
}

/* ------------------------------------------------ runs of whole clusters */

/* Streams of one run read at once: at most this many bytes, so a run's
 * buffer stays small whatever the request. */
#define PACKED_RUN_BYTES (1u << 20)

/* May the cluster at guest offset, whose entry is next, join the run? */
static bool joins_run(struct qcowkit_image *img,
                      const struct qk_packed_run *run, uint64_t next,
                      uint64_t guest)
{
    uint64_t size = stream_size(img, next);

    if (!(next & QCOW_COMPRESSED) ||
        (next & img->offset_mask) != run->host + run->bytes ||
        run->bytes + size > PACKED_RUN_BYTES)
        return false;
    /* A bad stream ends the run: the next read reports it on its own. */
    return qk_check_compressed(img, next, guest) == 0;
}

int qk_packed_run_find(struct qcowkit_image *img, uint64_t entry,
                       uint64_t count, uint64_t offset,
                       struct qk_packed_run *run)
{
    uint64_t cs = img->cluster_size, next;
    int err;

    run->clusters = 0;
    if ((offset & (cs - 1)) || count < cs)
        return 0;
    err = qk_check_compressed(img, entry, offset);
    if (err < 0)
        return err;
    run->guest = offset;
    run->host = entry & img->offset_mask;
    run->bytes = 0;
    for (;;) {
        run->sizes[run->clusters++] = (uint32_t)stream_size(img, entry);
        run->bytes += stream_size(img, entry);
        if (run->clusters == QK_PACKED_RUN_MAX ||
            (run->clusters + 1) * cs > count)
            return 0;
        err = qk_lookup(img, offset + run->clusters * cs, &next);
        if (err < 0 || !joins_run(img, run, next, offset + run->clusters * cs))
            return 0; /* the next read meets the error, if any */
        entry = next;
    }
}

int qk_packed_run_read(struct qcowkit_image *img,
                       const struct qk_packed_run *run, uint8_t *buf)
{
    uint8_t *in = malloc(run->bytes ? run->bytes : 1);
    struct libdeflate_decompressor *fast = libdeflate_alloc_decompressor();
    uint64_t at = 0, cs = img->cluster_size;
    int err;

    if (!in)
        err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    else
        err = qk_read(img->io, in, run->bytes, run->host);
    for (unsigned i = 0; err == 0 && i < run->clusters; i++) {
        if (!inflate_exact(fast, in + at, run->sizes[i], buf + i * cs, cs))
            err = not_inflating(img, run->host + at, run->guest + i * cs);
        at += run->sizes[i];
    }
    if (fast)
        libdeflate_free_decompressor(fast);
    free(in);
    return err;
}
