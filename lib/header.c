/* The 48-byte qcow header: decoding, encoding and every check on it. */
#include <errno.h>
#include <limits.h>

#include "internal.h"

void qk_header_decode(const uint8_t *raw, struct qk_header *h)
{
    h->magic = qk_be32(raw);
    h->version = qk_be32(raw + 4);
    h->backing_file_offset = qk_be64(raw + 8);
    h->backing_file_size = qk_be32(raw + 16);
    h->mtime = qk_be32(raw + 20);
    h->size = qk_be64(raw + 24);
    h->cluster_bits = raw[32];
    h->l2_bits = raw[33];
    h->crypt_method = qk_be32(raw + 36);
    h->l1_table_offset = qk_be64(raw + 40);
}

void qk_header_encode(const struct qk_header *h, uint8_t *raw)
{
    qk_put_be32(raw, h->magic);
    qk_put_be32(raw + 4, h->version);
    qk_put_be64(raw + 8, h->backing_file_offset);
    qk_put_be32(raw + 16, h->backing_file_size);
    qk_put_be32(raw + 20, h->mtime);
    qk_put_be64(raw + 24, h->size);
    raw[32] = h->cluster_bits;
    raw[33] = h->l2_bits;
    raw[34] = raw[35] = 0;
    qk_put_be32(raw + 36, h->crypt_method);
    qk_put_be64(raw + 40, h->l1_table_offset);
}

/* Does [offset, offset+len) lie inside the file and clear of the header? */
static int check_region(const char *name, const char *what, uint64_t offset,
                        uint64_t len, uint64_t file_size)
{
    if (offset < QCOW_HEADER_SIZE)
        return qk_error(-EINVAL, "%s: %s at offset %llu overlaps the header",
                        name, what, (unsigned long long)offset);
    if (offset > file_size || len > file_size - offset)
        return qk_error(-EINVAL,
                        "%s: %s at offset %llu (%llu bytes) lies outside the "
                        "file (%llu bytes)",
                        name, what, (unsigned long long)offset,
                        (unsigned long long)len, (unsigned long long)file_size);
    return 0;
}

static int check_geometry(const struct qk_header *h, const char *name,
                          uint64_t *l1_entries)
{
    unsigned shift = h->cluster_bits + h->l2_bits;
    uint64_t entries;

    if (h->size <= 1)
        return qk_error(-EINVAL,
                        "%s: size %llu is too small (at least 2 bytes)", name,
                        (unsigned long long)h->size);
    if (h->cluster_bits < 9 || h->cluster_bits > 16)
        return qk_error(-EINVAL, "%s: cluster_bits %u is outside 9..16", name,
                        h->cluster_bits);
    if (h->l2_bits < 6 || h->l2_bits > 13)
        return qk_error(-EINVAL, "%s: l2_bits %u is outside 6..13", name,
                        h->l2_bits);
    if (h->size > UINT64_MAX - (UINT64_C(1) << shift))
        return qk_error(-EINVAL, "%s: size %llu is too large", name,
                        (unsigned long long)h->size);
    entries = (h->size + (UINT64_C(1) << shift) - 1) >> shift;
    if (entries > INT_MAX / sizeof(uint64_t))
        return qk_error(-EINVAL,
                        "%s: size %llu needs %llu L1 entries, more than the "
                        "format allows",
                        name, (unsigned long long)h->size,
                        (unsigned long long)entries);
    *l1_entries = entries;
    return 0;
}

int qk_header_validate(const struct qk_header *h, uint64_t file_size,
                       const char *name, uint64_t *l1_entries)
{
    int err;

    if (h->magic != QCOW_MAGIC)
        return qk_error(-EINVAL, "%s: not a qcow image (magic 0x%08x)", name,
                        h->magic);
    if (h->version != 1) {
        if (h->version == 2 || h->version == 3)
            return qk_error(-ENOTSUP,
                            "%s: qcow version %u is not supported (this is "
                            "a qcow2 image: use a qcow2 tool such as qemu-img)",
                            name, h->version);
        return qk_error(-ENOTSUP, "%s: qcow version %u is not supported", name,
                        h->version);
    }
    err = check_geometry(h, name, l1_entries);
    if (err < 0)
        return err;
    if (h->crypt_method > 1)
        return qk_error(-EINVAL,
                        "%s: crypt_method %u is neither 0 (none) nor 1 (AES)",
                        name, h->crypt_method);
    if (h->backing_file_offset != 0) {
        if (h->backing_file_size > QCOW_MAX_BACKING_NAME)
            return qk_error(-EINVAL,
                            "%s: backing_file_size %u exceeds %u bytes", name,
                            h->backing_file_size, QCOW_MAX_BACKING_NAME);
        err = check_region(name, "backing file name", h->backing_file_offset,
                           h->backing_file_size, file_size);
        if (err < 0)
            return err;
    }
    err = check_region(name, "L1 table", h->l1_table_offset,
                       *l1_entries * sizeof(uint64_t), file_size);
    /* Else writing an L1 entry would rewrite the name, and back. */
    if (err == 0 && h->backing_file_offset != 0 &&
        h->backing_file_offset < h->l1_table_offset + *l1_entries * 8 &&
        h->l1_table_offset < h->backing_file_offset + h->backing_file_size)
        err = qk_error(-EINVAL,
                       "%s: backing file name at offset %llu overlaps the L1 "
                       "table at offset %llu",
                       name, (unsigned long long)h->backing_file_offset,
                       (unsigned long long)h->l1_table_offset);
    return err;
}
