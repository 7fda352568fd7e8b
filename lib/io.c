/* The backend dispatch: every byte the library touches passes here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int qk_io_make(const struct qcowkit_io_ops *ops, void *opaque, const char *name,
               struct qcowkit_io **io)
{
    struct qcowkit_io_ops o;
    struct qcowkit_io *made;
    int err;

    *io = NULL;
    if (!ops)
        return qk_error(-EINVAL, "qcowkit_io_new: no backend functions");
    /*
     * An older caller's table ends early: its optional functions past the
     * end stay NULL.  A newer caller's extra functions are never called.
     */
    err = qk_abi_in(&o, sizeof o, ops, QK_IO_OPS_MIN, false,
                    "qcowkit_io_new: struct qcowkit_io_ops");
    if (err < 0)
        return err;
    if (!o.pread || !o.pwrite || !o.flush || !o.get_size || !o.truncate)
        return qk_error(-EINVAL,
                        "qcowkit_io_new: %s: pread, pwrite, flush, get_size "
                        "and truncate are required",
                        name ? name : "(io)");
    made = calloc(1, sizeof *made);
    if (!made)
        return qk_error(-ENOMEM, "%s: out of memory", name ? name : "io");
    made->ops = o;
    made->opaque = opaque;
    pthread_mutex_init(&made->lock_guard, NULL);
    made->name = strdup(name ? name : "(io)");
    if (!made->name) {
        pthread_mutex_destroy(&made->lock_guard);
        free(made);
        return qk_error(-ENOMEM, "out of memory");
    }
    *io = made;
    return 0;
}

int qcowkit_io_new(const struct qcowkit_io_ops *ops, void *opaque,
                   const char *name, struct qcowkit_io **io)
{
    return qk_io_make(ops, opaque, name, io);
}

/* The direct calls record a message on failure, as every public call does. */
int qcowkit_io_pread(struct qcowkit_io *io, void *buf, size_t count,
                     uint64_t offset)
{
    return qk_read(io, buf, count, offset);
}

int qcowkit_io_pwrite(struct qcowkit_io *io, const void *buf, size_t count,
                      uint64_t offset)
{
    return qk_write(io, buf, count, offset);
}

int qcowkit_io_flush(struct qcowkit_io *io)
{
    return qk_sync(io);
}

int qcowkit_io_get_size(struct qcowkit_io *io, uint64_t *size)
{
    return qk_io_size(io, size);
}

int qk_io_truncate(struct qcowkit_io *io, uint64_t size)
{
    int err = io->ops.truncate(io->opaque, size);

    if (err < 0)
        return qk_error(err, "%s: cannot truncate to %llu bytes: %s", io->name,
                        (unsigned long long)size, strerror(-err));
    return 0;
}

int qcowkit_io_truncate(struct qcowkit_io *io, uint64_t size)
{
    return qk_io_truncate(io, size);
}

const char *qcowkit_io_name(const struct qcowkit_io *io)
{
    return io->name;
}

void qk_io_close(struct qcowkit_io *io)
{
    if (!io)
        return;
    if (io->ops.close)
        io->ops.close(io->opaque);
    pthread_mutex_destroy(&io->lock_guard);
    free(io->name);
    free(io);
}

void qcowkit_io_close(struct qcowkit_io *io)
{
    qk_io_close(io);
}

int qk_read(struct qcowkit_io *io, void *buf, size_t count, uint64_t offset)
{
    int err = io->ops.pread(io->opaque, buf, count, offset);
    if (err < 0)
        return qk_error(err, "%s: read of %zu bytes at offset %llu failed: %s",
                        io->name, count, (unsigned long long)offset,
                        strerror(-err));
    return 0;
}

int qk_write(struct qcowkit_io *io, const void *buf, size_t count,
             uint64_t offset)
{
    int err = io->ops.pwrite(io->opaque, buf, count, offset);
    if (err < 0)
        return qk_error(err, "%s: write of %zu bytes at offset %llu failed: %s",
                        io->name, count, (unsigned long long)offset,
                        strerror(-err));
    return 0;
}

int qk_sync(struct qcowkit_io *io)
{
    int err = io->ops.flush(io->opaque);
    if (err < 0)
        return qk_error(err, "%s: flush failed: %s", io->name, strerror(-err));
    return 0;
}

int qk_io_discard(struct qcowkit_io *io, uint64_t offset, uint64_t length)
{
    int err;

    if (!io->ops.discard)
        return qk_error(-EOPNOTSUPP, "%s: the backend cannot discard",
                        io->name);
    err = io->ops.discard(io->opaque, offset, length);
    if (err < 0)
        return qk_error(err,
                        "%s: discard of %llu bytes at offset %llu failed: %s",
                        io->name, (unsigned long long)length,
                        (unsigned long long)offset, strerror(-err));
    return 0;
}

int qk_io_zero_range(struct qcowkit_io *io, uint64_t offset, uint64_t length)
{
    return io->zero_range ? io->zero_range(io->opaque, offset, length)
                          : -EOPNOTSUPP;
}

int qcowkit_io_discard(struct qcowkit_io *io, uint64_t offset, uint64_t length)
{
    return qk_io_discard(io, offset, length);
}

int qk_io_size(struct qcowkit_io *io, uint64_t *size)
{
    int err = io->ops.get_size(io->opaque, size);
    if (err < 0)
        return qk_error(err, "%s: cannot get the size: %s", io->name,
                        strerror(-err));
    return 0;
}

int qk_io_extent(struct qcowkit_io *io, uint64_t offset, uint64_t *length,
                 bool *hole)
{
    uint64_t len = 0;
    int is_hole = 0;
    int err;

    if (!io->ops.extent)
        return -EOPNOTSUPP;
    err = io->ops.extent(io->opaque, offset, &len, &is_hole);
    if (err < 0)
        return err;
    /* A backend's answer must move on, and stay inside 64 bits. */
    if (len == 0 || len > UINT64_MAX - offset)
        return -EIO;
    *length = len;
    *hole = is_hole != 0;
    return 0;
}

int qk_io_lock_op(struct qcowkit_io *io, unsigned mode, const char **why)
{
    return io->ops.lock ? io->ops.lock(io->opaque, mode, why) : 0;
}

int qcowkit_io_lock(struct qcowkit_io *io, unsigned mode, const char **why)
{
    const char *reason = NULL;
    int err;

    if (mode > QCOWKIT_IO_LOCK_WRITE)
        return qk_error(-EINVAL, "%s: lock mode %u is not a QCOWKIT_IO_LOCK_*",
                        io->name, mode);
    err = qk_io_lock_op(io, mode, &reason);
    if (err == -EBUSY && why)
        *why = reason;
    if (err == -EBUSY)
        return qk_error(err, "%s: image is in use: %s", io->name,
                        reason ? reason : "another user holds its lock");
    if (err < 0)
        return qk_error(err, "%s: cannot lock: %s", io->name, strerror(-err));
    return 0;
}

int qcowkit_io_extent(struct qcowkit_io *io, uint64_t offset, uint64_t *length,
                      int *hole)
{
    bool is_hole = false;
    int err = qk_io_extent(io, offset, length, &is_hole);

    if (err == -EOPNOTSUPP && !io->ops.extent)
        return qk_error(err, "%s: the backend tells no extents", io->name);
    if (err < 0)
        return qk_error(err, "%s: extent at offset %llu failed: %s", io->name,
                        (unsigned long long)offset, strerror(-err));
    *hole = is_hole;
    return 0;
}
