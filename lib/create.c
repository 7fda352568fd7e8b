/* New images, laid out exactly as `qemu-img create -f qcow` lays them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The most of an image create writes at once (zeros of the L1 table). */
#define CREATE_CHUNK (UINT64_C(64) << 10)

void qcowkit_create_opts_init(struct qcowkit_create_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->format = QCOWKIT_FORMAT_QCOW;
}

/* QEMU's choice: small clusters under an overlay, else 4 KiB. */
static int choose_geometry(const struct qcowkit_create_opts *o,
                           const char *name, struct qk_header *h)
{
    bool backing = o->backing_file && o->backing_file[0];
    uint32_t size = o->cluster_size ? o->cluster_size : backing ? 512 : 4096;
    unsigned bits = 9;

    while (bits < 16 && (UINT32_C(1) << bits) < size)
        bits++;
    if (size < 512 || size > 65536 || (UINT32_C(1) << bits) != size)
        return qk_error(-EINVAL,
                        "%s: cluster_size %u is not a power of two in "
                        "512..65536",
                        name, size);
    h->cluster_bits = (uint8_t)bits;
    /* 512-byte clusters get 32 KiB tables, as QEMU gives them; others
     * one cluster per table, as QEMU's 4 KiB default has. */
    h->l2_bits = bits == 9 ? 12 : (uint8_t)(bits - 3);
    return 0;
}

static int build_header(const struct qcowkit_create_opts *o, const char *name,
                        struct qk_header *h, uint64_t *l1_entries)
{
    size_t name_len = o->backing_file ? strlen(o->backing_file) : 0;
    uint64_t header_size = QCOW_HEADER_SIZE;
    unsigned shift;
    int err;

    memset(h, 0, sizeof *h);
    if (o->size == 0)
        return qk_error(-EINVAL, "%s: image size must not be zero", name);
    if (o->size > UINT64_MAX - 511)
        return qk_error(-EINVAL, "%s: image size %llu is too large", name,
                        (unsigned long long)o->size);
    if (name_len > QCOW_MAX_BACKING_NAME)
        return qk_error(-EINVAL,
                        "%s: backing file name of %zu bytes exceeds %u", name,
                        name_len, QCOW_MAX_BACKING_NAME);
    err = choose_geometry(o, name, h);
    if (err < 0)
        return err;
    h->magic = QCOW_MAGIC;
    h->version = 1;
    h->size = qk_align_up(o->size, QCOW_SECTOR);
    if (name_len) {
        h->backing_file_offset = header_size;
        h->backing_file_size = (uint32_t)name_len;
        header_size += name_len;
    }
    h->l1_table_offset = qk_align_up(header_size, 8);
    h->crypt_method = o->key ? 1 : 0;
    shift = h->cluster_bits + h->l2_bits;
    *l1_entries = (h->size + (UINT64_C(1) << shift) - 1) >> shift;
    return qk_header_validate(h, UINT64_MAX, name, l1_entries);
}

static int create_raw(struct qcowkit_io *io, const char *name, uint64_t size)
{
    int err = io->ops.truncate(io->opaque, size);

    if (err < 0)
        return qk_error(err, "%s: cannot set the size to %llu bytes: %s", name,
                        (unsigned long long)size, strerror(-err));
    return 0;
}

/* The rest of the table: zeros by growing the backend to total bytes. */
static int grow_to(struct qcowkit_io *io, const char *name, uint8_t *buf,
                   uint64_t total)
{
    int err = qk_io_truncate(io, total);

    free(buf);
    if (err < 0)
        return qk_error(err, "%s: cannot set the size to %llu bytes: %s", name,
                        (unsigned long long)total, strerror(-err));
    return 0;
}

static int create_qcow(struct qcowkit_io *io, const char *name,
                       const struct qcowkit_create_opts *o)
{
    struct qk_header h;
    uint64_t l1_entries, l1_bytes, total, chunk, end;
    uint8_t *image;
    int err = build_header(o, name, &h, &l1_entries);

    if (err < 0)
        return err;
    /* QEMU writes the L1 table as whole zeroed sectors.  We write them a
     * bounded piece at a time up to the backend's end; past it, growing
     * the backend gives the zeros without writing (or storing) them. */
    l1_bytes = qk_align_up(l1_entries * 8, QCOW_SECTOR);
    total = h.l1_table_offset + l1_bytes;
    err = qk_io_size(io, &end);
    if (err < 0)
        return err;
    chunk = total < CREATE_CHUNK ? total : CREATE_CHUNK;
    image = calloc(1, chunk);
    if (!image)
        return qk_error(-ENOMEM, "%s: out of memory", name);
    qk_header_encode(&h, image);
    if (h.backing_file_size)
        memcpy(image + h.backing_file_offset, o->backing_file,
               h.backing_file_size);
    for (uint64_t done = 0; err == 0 && done < total; done += chunk) {
        if (done > 0 && done >= end)
            return grow_to(io, name, image, total);
        if (chunk > total - done)
            chunk = total - done;
        err = qk_write(io, image, chunk, done);
        if (done == 0)
            memset(image, 0, chunk);
    }
    free(image);
    return err;
}

/* The caller's options, checked, with fields it does not know zeroed. */
static int take_opts(const struct qcowkit_create_opts *given, const char *name,
                     struct qcowkit_create_opts *o)
{
    struct qk_header h;
    uint64_t l1_entries;
    int err;

    if (!given)
        return qk_error(-EINVAL, "qcowkit_create: missing options");
    err = qk_abi_in(o, sizeof *o, given, QK_CREATE_OPTS_MIN, true,
                    "qcowkit_create: struct qcowkit_create_opts");
    if (err < 0)
        return err;
    if (o->format == QCOWKIT_FORMAT_RAW)
        return 0;
    if (o->format != QCOWKIT_FORMAT_QCOW && o->format != 0)
        return qk_error(-EINVAL, "%s: unknown image format %d", name,
                        (int)o->format);
    return build_header(o, name, &h, &l1_entries);
}

/* Write a new image over an empty backend, under its write lock. */
static int create_on(struct qcowkit_io *io, const char *name,
                     const struct qcowkit_create_opts *o)
{
    int err = 0;

    if (o->format != QCOWKIT_FORMAT_RAW)
        err = qk_refuse_self_backing(name, o->backing_file, io);
    if (err == 0)
        err = o->format == QCOWKIT_FORMAT_RAW ? create_raw(io, name, o->size)
                                              : create_qcow(io, name, o);
    if (err == 0)
        err = qk_sync(io);
    return err;
}

int qcowkit_create_io(struct qcowkit_io *io, const char *name,
                      const struct qcowkit_create_opts *opts)
{
    struct qcowkit_create_opts o;
    int err;

    if (!io)
        return qk_error(-EINVAL, "qcowkit_create: no backend");
    name = name ? name : io->name;
    err = take_opts(opts, name, &o);
    if (err == 0)
        err = qk_lock_image(io, true, name);
    if (err < 0)
        return err;
    err = create_on(io, name, &o);
    qk_unlock_image(io, true);
    return err;
}

/*
 * The file is opened without O_TRUNC and emptied only under the write
 * lock: a user of the old image (QEMU, another qcowkit) makes us refuse
 * before anything is touched.
 */
int qcowkit_create(const char *path, const struct qcowkit_create_opts *opts,
                   unsigned flags)
{
    unsigned io_flags = QCOWKIT_IO_RDWR | QCOWKIT_IO_CREATE;
    struct qcowkit_create_opts o;
    struct qcowkit_io *io;
    int err;

    /* Refuse bad options before an existing file is touched. */
    err = take_opts(opts, path, &o);
    if (err == 0 && o.format != QCOWKIT_FORMAT_RAW)
        err = qk_refuse_self_backing(path, o.backing_file, NULL);
    if (err < 0)
        return err;
    if (!(flags & QCOWKIT_IO_TRUNC))
        io_flags |= QCOWKIT_IO_EXCL;
    err = qk_io_open_file(path, io_flags, &io);
    if (err < 0)
        return err;
    err = qk_lock_image(io, true, path);
    if (err == 0)
        err = qk_io_truncate(io, 0);
    if (err == 0)
        err = create_on(io, path, &o);
    qk_io_close(io); /* closing the descriptor drops its locks */
    return err;
}
