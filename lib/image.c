/* Image handles: open, close, info, flush and make-empty. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_CACHE_BYTES (UINT64_C(32) << 20)

static void open_opts_defaults(struct qcowkit_open_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
}

void qcowkit_open_opts_init(struct qcowkit_open_opts *opts)
{
    open_opts_defaults(opts);
}

static int probe_format(struct qcowkit_io *io, uint64_t size,
                        enum qcowkit_format *format)
{
    uint8_t magic[4];
    int err;

    if (*format != QCOWKIT_FORMAT_AUTO)
        return 0;
    *format = QCOWKIT_FORMAT_RAW;
    if (size < sizeof magic)
        return 0;
    err = qk_read(io, magic, sizeof magic, 0);
    if (err < 0)
        return err;
    if (qk_be32(magic) == QCOW_MAGIC)
        *format = QCOWKIT_FORMAT_QCOW;
    return 0;
}

static int load_backing_name(struct qcowkit_image *img)
{
    const struct qk_header *h = &img->header;

    if (h->backing_file_offset == 0)
        return 0;
    img->backing_file[h->backing_file_size] = '\0';
    return qk_read(img->io, img->backing_file, h->backing_file_size,
                   h->backing_file_offset);
}

void qk_update_meta_end(struct qcowkit_image *img)
{
    const struct qk_header *h = &img->header;

    img->meta_end = h->l1_table_offset + img->l1_entries * 8;
    if (h->backing_file_offset &&
        h->backing_file_offset + h->backing_file_size > img->meta_end)
        img->meta_end = h->backing_file_offset + h->backing_file_size;
}

static int open_qcow(struct qcowkit_image *img, uint64_t file_size,
                     uint64_t cache_bytes)
{
    struct qk_header *h = &img->header;
    uint8_t raw[QCOW_HEADER_SIZE];
    int err;

    if (file_size < QCOW_HEADER_SIZE)
        return qk_error(-EINVAL,
                        "%s: file of %llu bytes is too short for a qcow "
                        "header",
                        img->name, (unsigned long long)file_size);
    err = qk_read(img->io, raw, sizeof raw, 0);
    if (err < 0)
        return err;
    qk_header_decode(raw, h);
    err = qk_header_validate(h, file_size, img->name, &img->l1_entries);
    if (err < 0)
        return err;
    img->cluster_bits = h->cluster_bits;
    img->cluster_size = UINT32_C(1) << h->cluster_bits;
    img->l2_bits = h->l2_bits;
    img->l2_entries = UINT32_C(1) << h->l2_bits;
    img->offset_mask = (UINT64_C(1) << (63 - h->cluster_bits)) - 1;
    /* QEMU sees whole sectors only. */
    img->virtual_size = h->size & ~(uint64_t)(QCOW_SECTOR - 1);
    qk_update_meta_end(img);
    img->file_end = file_size;
    /* The L1 table is read as it is used (l1.c), and the kept tables
     * are found when first needed (trust.c). */
    qk_trust_reset(img, file_size);
    err = load_backing_name(img);
    if (err == 0)
        err = qk_cache_init(img, cache_bytes);
    if (err == 0) {
        img->inflated = malloc(img->cluster_size);
        if (!img->inflated)
            err = qk_error(-ENOMEM, "%s: out of memory", img->name);
    }
    return err;
}

static void free_image(struct qcowkit_image *img)
{
    qk_close(img->backing);
    qk_cache_free(img);
    qk_trust_free(img);
    free(img->inflated);
    free(img->backing_path);
    qk_crypt_wipe(img);
    if (img->locked)
        qk_unlock_image(img->io, !img->read_only);
    if (img->owns_io)
        qk_io_close(img->io);
    pthread_mutex_destroy(&img->lock);
    qk_access_destroy(img);
    free(img->name);
    free(img);
}

/* The backend's lock, unless force-share: before the first byte is read. */
static int take_lock(struct qcowkit_image *img, const struct qk_open_params *p)
{
    int err;

    if (p->flags & QCOWKIT_OPEN_FORCE_SHARE)
        return 0;
    err = qk_lock_image(img->io, !img->read_only, p->name);
    img->locked = err == 0;
    return err;
}

int qk_open_chain(struct qcowkit_io *io, bool owns_io,
                  const struct qk_open_params *p, struct qcowkit_image **out)
{
    struct qcowkit_image *img;
    uint64_t file_size;
    int err;

    *out = NULL;
    img = calloc(1, sizeof *img);
    if (!img || !(img->name = strdup(p->name))) {
        free(img);
        if (owns_io)
            qk_io_close(io);
        return qk_error(-ENOMEM, "%s: out of memory", p->name);
    }
    pthread_mutex_init(&img->lock, NULL);
    qk_access_init(img);
    img->io = io;
    img->owns_io = owns_io;
    img->read_only = !(p->flags & QCOWKIT_OPEN_RDWR);
    img->no_sync = p->flags & QCOWKIT_OPEN_NO_SYNC;
    img->format = p->format;
    img->inflated_entry = 0;
    err = take_lock(img, p);
    if (err == 0)
        err = qk_io_size(io, &file_size);
    if (err == 0)
        err = probe_format(io, file_size, &img->format);
    img->probed = p->format == QCOWKIT_FORMAT_AUTO;
    if (err == 0 && img->format == QCOWKIT_FORMAT_RAW)
        img->virtual_size = file_size;
    else if (err == 0)
        err = open_qcow(img, file_size, p->cache_bytes);
    if (err == 0 && img->format == QCOWKIT_FORMAT_QCOW &&
        img->header.crypt_method && p->key)
        qk_crypt_set_key(img, p->key, p->key_len);
    if (err == 0 && img->backing_file[0] &&
        !(p->flags & QCOWKIT_OPEN_NO_BACKING))
        err = qk_open_backing(img, p);
    if (err < 0) {
        free_image(img);
        return err;
    }
    *out = img;
    return 0;
}

/* ---------------------------------------------------- backing chain */

static bool in_chain(const struct qk_open_params *p,
                     const struct qcowkit_io *io)
{
    for (; p; p = p->above)
        if (p->self.known && p->self.dev == io->dev && p->self.ino == io->ino)
            return true;
    return false;
}

int qk_open_backing(struct qcowkit_image *img, const struct qk_open_params *p)
{
    struct qk_open_params next;
    struct qcowkit_io *io;
    const char *why;
    int err;

    if (p->depth + 1 >= QK_MAX_CHAIN)
        return qk_error(-ELOOP, "%s: backing chain is deeper than %d images",
                        img->name, QK_MAX_CHAIN);
    img->backing_path = qk_resolve_backing(img->name, img->backing_file);
    if (!img->backing_path)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    err = qk_io_open_file_why(img->backing_path, QCOWKIT_IO_RDONLY, &io, &why);
    if (err < 0)
        return qk_error(err, "%s: cannot open backing file '%s': %s", img->name,
                        img->backing_path, why);
    if (in_chain(p, io)) {
        qk_io_close(io);
        return qk_error(-ELOOP,
                        "%s: backing file '%s' makes a loop in the backing "
                        "chain",
                        img->name, img->backing_path);
    }
    memset(&next, 0, sizeof next);
    next.name = img->backing_path;
    next.flags = QCOWKIT_OPEN_RDONLY | (p->flags & QCOWKIT_OPEN_FORCE_SHARE);
    next.format = p->backing_format;
    next.backing_format = QCOWKIT_FORMAT_AUTO;
    next.cache_bytes = p->cache_bytes;
    next.key = p->key;
    next.key_len = p->key_len;
    next.self.dev = io->dev;
    next.self.ino = io->ino;
    next.self.known = true;
    next.above = p;
    next.depth = p->depth + 1;
    return qk_open_chain(io, true, &next, &img->backing);
}

/* Fields past the caller's struct_size (an older caller) stay zero. */
static int params_from_opts(const struct qcowkit_open_opts *given,
                            const char *name, struct qk_open_params *p)
{
    struct qcowkit_open_opts o;
    int err;

    open_opts_defaults(&o);
    if (given) {
        err = qk_abi_in(&o, sizeof o, given, QK_OPEN_OPTS_MIN, true,
                        "qcowkit_open: struct qcowkit_open_opts");
        if (err < 0)
            return err;
    }
    memset(p, 0, sizeof *p);
    p->name = name;
    p->cache_bytes = o.cache_size ? o.cache_size : DEFAULT_CACHE_BYTES;
    p->flags = o.flags;
    p->format = o.format;
    p->backing_format = o.backing_format;
    p->key = o.key;
    p->key_len = o.key_len;
    return 0;
}

int qcowkit_open_io(struct qcowkit_io *io, const char *name,
                    const struct qcowkit_open_opts *opts,
                    struct qcowkit_image **img)
{
    struct qk_open_params p;
    int err;

    *img = NULL;
    if (!io)
        return qk_error(-EINVAL, "qcowkit_open_io: no backend");
    err = params_from_opts(opts, name ? name : io->name, &p);
    if (err < 0)
        return err;
    if (io->identity_known) {
        p.self.dev = io->dev;
        p.self.ino = io->ino;
        p.self.known = true;
    }
    return qk_open_chain(io, false, &p, img);
}

int qcowkit_open(const char *path, const struct qcowkit_open_opts *opts,
                 struct qcowkit_image **img)
{
    struct qk_open_params p;
    struct qcowkit_io *io;
    unsigned io_flags = QCOWKIT_IO_RDONLY;
    int err;

    *img = NULL;
    err = params_from_opts(opts, path, &p);
    if (err < 0)
        return err;
    if (p.flags & QCOWKIT_OPEN_RDWR)
        io_flags = QCOWKIT_IO_RDWR;
    if ((p.flags & QCOWKIT_OPEN_FORCE_SHARE) && (p.flags & QCOWKIT_OPEN_RDWR))
        return qk_error(-EINVAL,
                        "%s: force-share is only for read-only opening", path);
    err = qk_io_open_file(path, io_flags, &io);
    if (err < 0)
        return err;
    p.self.dev = io->dev;
    p.self.ino = io->ino;
    p.self.known = true;
    return qk_open_chain(io, true, &p, img);
}

/* Exclusive: a call still running on the handle is a caller's bug. */
int qk_close(struct qcowkit_image *img)
{
    int err = 0;

    if (!img)
        return 0;
    qk_access_exclusive(img);
    if (!img->read_only)
        err = qk_flush(img);
    qk_access_leave(img);
    free_image(img);
    return err;
}

int qcowkit_close(struct qcowkit_image *img)
{
    return qk_close(img);
}

int qk_flush(struct qcowkit_image *img)
{
    int err = 0;

    qk_assert_access(img);
    if (img->read_only)
        return 0;
    pthread_mutex_lock(&img->lock);
    if (img->format == QCOWKIT_FORMAT_QCOW)
        err = qk_writeback(img);
    else
        err = qk_barrier_if_written(img);
    pthread_mutex_unlock(&img->lock);
    return err;
}

int qcowkit_flush(struct qcowkit_image *img)
{
    int err;

    qk_access_shared(img);
    err = qk_flush(img);
    qk_access_leave(img);
    return err;
}

static int clear_tables(struct qcowkit_image *img)
{
    int err;

    qk_assert_exclusive(img);
    qk_cache_drop(img);
    img->inflated_entry = 0;
    err = qk_l1_clear(img);
    /* The empty L1 table must be on disk before the clusters vanish. */
    if (err == 0)
        err = qk_barrier(img);
    if (err == 0)
        err = qk_io_truncate_to(img, img->meta_end);
    /* Nothing past the metadata is referenced any more. */
    if (err == 0)
        qk_trust_reset(img, img->meta_end);
    return err;
}

int qcowkit_make_empty(struct qcowkit_image *img)
{
    int err;

    if (img->read_only)
        return qk_error(-EROFS, "%s: image is read-only", img->name);
    if (img->format != QCOWKIT_FORMAT_QCOW)
        return qk_error(-ENOTSUP, "%s: only qcow images can be emptied",
                        img->name);
    qk_access_exclusive(img);
    pthread_mutex_lock(&img->lock);
    err = clear_tables(img);
    pthread_mutex_unlock(&img->lock);
    qk_access_leave(img);
    return err;
}

/* What the handle says about itself; set_backing and resize change it. */
static int info_of(struct qcowkit_image *img, struct qcowkit_info *full)
{
    int err;

    memset(full, 0, sizeof *full);
    full->format = img->format;
    full->format_probed = img->probed;
    full->virtual_size = img->virtual_size;
    full->read_only = img->read_only;
    err = qk_io_size(img->io, &full->file_size);
    if (err < 0)
        return err;
    if (img->format == QCOWKIT_FORMAT_QCOW) {
        full->cluster_size = img->cluster_size;
        full->cluster_bits = img->cluster_bits;
        full->l2_bits = img->l2_bits;
        full->crypt_method = img->header.crypt_method;
        memcpy(full->backing_file, img->backing_file, sizeof img->backing_file);
        if (img->backing_path)
            strncpy(full->backing_path, img->backing_path,
                    sizeof full->backing_path - 1);
    }
    return 0;
}

int qcowkit_get_info(struct qcowkit_image *img, struct qcowkit_info *info)
{
    struct qcowkit_info full;
    int err = qk_abi_out_check(info, QK_INFO_MIN,
                               "qcowkit_get_info: struct qcowkit_info");

    if (err < 0)
        return err;
    qk_access_shared(img);
    err = info_of(img, &full);
    qk_access_leave(img);
    if (err == 0)
        qk_abi_out(info, &full, sizeof full);
    return err;
}

const char *qcowkit_name(const struct qcowkit_image *img)
{
    return img->name;
}

struct qcowkit_image *qcowkit_backing(struct qcowkit_image *img)
{
    return img->backing;
}
