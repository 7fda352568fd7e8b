/*
 * Reading compressed clusters: raw deflate streams, one cluster each,
 * inflated on the way to the guest.  The handle keeps the last cluster
 * inflated, keyed by its entry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

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
