/* The file backend: positioned I/O on a descriptor, fdatasync as barrier. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct file_backend {
    int fd;
    unsigned lock_mode; /* the QCOWKIT_IO_LOCK_* held */
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
    if (fstat(f->fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int file_truncate(void *opaque, uint64_t size)
{
    struct file_backend *f = opaque;
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
    int oflags = O_CLOEXEC;
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

int qk_io_open_file(const char *path, unsigned flags, struct qcowkit_io **io)
{
    struct file_backend *f;
    struct stat st;
    int fd, err;

    *io = NULL;
    fd = open(path, open_flags(flags), 0644);
    if (fd < 0)
        return qk_error(-errno, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        err = S_ISDIR(st.st_mode) ? -EISDIR : -errno;
        close(fd);
        return qk_error(err, "%s: %s", path, strerror(-err));
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return qk_error(-ENOMEM, "%s: out of memory", path);
    }
    f->fd = fd;
    err = qk_io_make(&file_ops, f, path, io);
    if (err < 0) {
        file_close(f);
        return err;
    }
    (*io)->identity_known = true;
    (*io)->dev = st.st_dev;
    (*io)->ino = st.st_ino;
    return 0;
}

int qcowkit_io_open_file(const char *path, unsigned flags,
                         struct qcowkit_io **io)
{
    return qk_io_open_file(path, flags, io);
}
