/* The file backend: positioned I/O on a descriptor, fdatasync as barrier. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct file_backend {
    int fd;
    unsigned lock_mode; /* the QCOWKIT_IO_LOCK_* held */
    bool block_device;  /* fixed size: st_size says 0, truncate fails */
};

static int file_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct file_backend *f = opaque;
    uint8_t *p = buf;

    while (count > 0) {
        ssize_t n = pread(f->fd, p, count, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) { /* past the end of the file: zeros */
            memset(p, 0, count);
            return 0;
        }
        p += n;
        count -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int file_pwrite(void *opaque, const void *buf, size_t count,
                       uint64_t offset)
{
    struct file_backend *f = opaque;
    const uint8_t *p = buf;

    while (count > 0) {
        ssize_t n = pwrite(f->fd, p, count, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        count -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int file_flush(void *opaque)
{
    struct file_backend *f = opaque;
    return fdatasync(f->fd) < 0 ? -errno : 0;
}

static int file_get_size(void *opaque, uint64_t *size)
{
    struct file_backend *f = opaque;
    struct stat st;
    off_t end;

    if (f->block_device) {
        end = lseek(f->fd, 0, SEEK_END);
        if (end < 0)
            return -errno;
        *size = (uint64_t)end;
        return 0;
    }
    if (fstat(f->fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Zeros on [from, end) of a block device: cheaply if it can, else written. */
static int zero_device(struct file_backend *f, uint64_t from, uint64_t end)
{
    static const uint8_t zeros[65536];
    uint64_t aligned = (from + QCOW_SECTOR - 1) / QCOW_SECTOR * QCOW_SECTOR;

    if (aligned < end && end % QCOW_SECTOR == 0 &&
        file_pwrite(f, zeros, (size_t)(aligned - from), from) == 0 &&
        (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t)aligned, (off_t)(end - aligned)) == 0 ||
         fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                   (off_t)aligned, (off_t)(end - aligned)) == 0))
        return 0;
    while (from < end) {
        size_t n =
            end - from < sizeof zeros ? (size_t)(end - from) : sizeof zeros;
        int err = file_pwrite(f, zeros, n, from);
        if (err < 0)
            return err;
        from += n;
    }
    return 0;
}

/*
 * A block device keeps its size.  Cutting it to size zeroes what lies
 * past size, so that an image made on it (cut to 0, then grown) reads
 * as zeros where nothing was written, as a new file does.
 */
static int file_truncate(void *opaque, uint64_t size)
{
    struct file_backend *f = opaque;
    uint64_t device_size;
    int err;

    if (f->block_device) {
        err = file_get_size(f, &device_size);
        if (err == 0 && size > device_size)
            err = -ENOSPC;
        if (err == 0)
            err = zero_device(f, size, device_size);
        return err;
    }
    return ftruncate(f->fd, (off_t)size) < 0 ? -errno : 0;
}

static int file_discard(void *opaque, uint64_t offset, uint64_t length)
{
    struct file_backend *f = opaque;
    if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)offset, (off_t)length) < 0)
        return -errno;
    return 0;
}

/* Zeros without writing them; on a block device too (its driver may
 * refuse a range not aligned to its logical block size). */
static int file_zero_range(void *opaque, uint64_t offset, uint64_t length)
{
    struct file_backend *f = opaque;
    if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                  (off_t)offset, (off_t)length) < 0)
        return -errno;
    return 0;
}

static int file_lock(void *opaque, unsigned mode, const char **why)
{
    struct file_backend *f = opaque;
    int err = qk_ofd_lock(f->fd, f->lock_mode, mode, why);

    if (err == 0)
        f->lock_mode = mode;
    return err;
}

/* SEEK_DATA and SEEK_HOLE; ENXIO from SEEK_DATA: a hole to the end. */
static int file_extent(void *opaque, uint64_t offset, uint64_t *length,
                       int *hole)
{
    struct file_backend *f = opaque;
    off_t data = lseek(f->fd, (off_t)offset, SEEK_DATA), end;

    if (data < 0 && errno != ENXIO)
        return -errno; /* the file system cannot tell */
    if (data < 0 || (uint64_t)data > offset) {
        *hole = 1;
        *length = data < 0 ? UINT64_MAX - offset : (uint64_t)data - offset;
        return 0;
    }
    end = lseek(f->fd, (off_t)offset, SEEK_HOLE);
    if (end < 0 || (uint64_t)end <= offset)
        return end < 0 ? -errno : -EIO;
    *hole = 0;
    *length = (uint64_t)end - offset;
    return 0;
}

static void file_close(void *opaque)
{
    struct file_backend *f = opaque;
    close(f->fd);
    free(f);
}

static const struct qcowkit_io_ops file_ops = {
    .struct_size = sizeof(struct qcowkit_io_ops),
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .get_size = file_get_size,
    .truncate = file_truncate,
    .close = file_close,
    .discard = file_discard,
    .lock = file_lock,
    .extent = file_extent,
};

static int open_flags(unsigned flags)
{
    /* Non-blocking until the type is known: opening a FIFO waits for a
     * writer.  No controlling terminal from a tty named by mistake. */
    int oflags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    if (!(flags & QCOWKIT_IO_RDWR))
        return oflags | O_RDONLY;
    oflags |= O_RDWR;
    if (flags & QCOWKIT_IO_CREATE)
        oflags |= O_CREAT;
    if (flags & QCOWKIT_IO_EXCL)
        oflags |= O_EXCL;
    if (flags & QCOWKIT_IO_TRUNC)
        oflags |= O_TRUNC;
    return oflags;
}

/*
 * Images live in regular files and block devices only.  Reads from a
 * FIFO, socket or terminal can wait forever, and none of them (nor a
 * character device such as /dev/zero or /dev/null) has a size to hold
 * an image; QEMU takes character devices as empty raw images, qcowkit
 * refuses them.
 */
static const char *kind_problem(mode_t mode)
{
    if (S_ISREG(mode) || S_ISBLK(mode))
        return NULL;
    if (S_ISDIR(mode))
        return strerror(EISDIR); /* as open(2) says, and scripts expect */
    if (S_ISFIFO(mode))
        return "is a FIFO, not a regular file or a block device";
    if (S_ISSOCK(mode))
        return "is a socket, not a regular file or a block device";
    if (S_ISCHR(mode))
        return "is a character device, not a regular file or a block device";
    return "is not a regular file or a block device";
}

/* Why open(2) failed: a socket fails with ENXIO, say what it is. */
static const char *open_problem(const char *path, int err)
{
    struct stat st;

    if ((err == ENXIO || err == EISDIR) && stat(path, &st) == 0 &&
        kind_problem(st.st_mode))
        return kind_problem(st.st_mode);
    return strerror(err);
}

static int open_checked(const char *path, unsigned flags, struct stat *st,
                        const char **why)
{
    int fd = open(path, open_flags(flags), 0644), err, fl;

    if (fd < 0) {
        err = errno;
        *why = open_problem(path, err);
        return -err;
    }
    if (fstat(fd, st) < 0 || (fl = fcntl(fd, F_GETFL)) < 0 ||
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        err = errno;
        close(fd);
        *why = strerror(err);
        return -err;
    }
    *why = kind_problem(st->st_mode);
    if (*why) {
        close(fd);
        return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
    }
    return fd;
}

int qk_io_open_file_why(const char *path, unsigned flags,
                        struct qcowkit_io **io, const char **why)
{
    struct file_backend *f;
    struct stat st;
    int fd, err;

    *io = NULL;
    fd = open_checked(path, flags, &st, why);
    if (fd < 0)
        return fd;
    f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        *why = strerror(ENOMEM);
        return -ENOMEM;
    }
    f->fd = fd;
    f->block_device = S_ISBLK(st.st_mode);
    err = qk_io_make(&file_ops, f, path, io);
    if (err < 0) {
        file_close(f);
        *why = strerror(-err);
        return err;
    }
    (*io)->zero_range = file_zero_range;
    (*io)->identity_known = true;
    (*io)->dev = st.st_dev;
    (*io)->ino = st.st_ino;
    return 0;
}

int qk_io_open_file(const char *path, unsigned flags, struct qcowkit_io **io)
{
    const char *why;
    int err = qk_io_open_file_why(path, flags, io, &why);

    if (err < 0)
        return qk_error(err, "%s: %s", path, why);
    return 0;
}

int qcowkit_io_open_file(const char *path, unsigned flags,
                         struct qcowkit_io **io)
{
    return qk_io_open_file(path, flags, io);
}
