/* ops.c - the FUSE operations of qcowkit mount: one regular file that
 * holds the guest disk, at the root of the mount (mounted over a regular
 * file) or as /disk (mounted on a folder).
 *
 * The high-level (path-based) API of libfuse is used: the tree has at
 * most two nodes, so its path lookups cost nothing, and it leaves inode
 * bookkeeping (lookup/forget) to libfuse.  Operations run on libfuse's
 * worker threads at once; the image handle is thread-safe, and keeps
 * resizes apart from data transfers itself. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fuse-disk.h"

static struct fuse_disk *disk(void)
{
    return fuse_get_context()->private_data;
}

static bool is_disk(const struct fuse_disk *d, const char *path)
{
    if (d->dir_mode)
        return strcmp(path, "/" FUSE_DISK_NAME) == 0;
    return strcmp(path, "/") == 0;
}

static bool is_dir(const struct fuse_disk *d, const char *path)
{
    return d->dir_mode && strcmp(path, "/") == 0;
}

/* A failed library call: tell a foreground user what went wrong. */
static int lib_failed(const struct fuse_disk *d, int err)
{
    if (d->verbose)
        cli_lib_error(err, NULL);
    return err;
}

static void *disk_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /*
     * O_TRUNC comes to open (which ignores it) instead of as a resize to
     * 0: `cmd > disk` overwrites the start of the disk, as with a block
     * device, rather than dropping all of it.
     */
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Report the image's own times and our size, never libfuse's. */
    cfg->use_ino = 0;
    cfg->hard_remove = 1;
    return fuse_get_context()->private_data;
}

static int disk_getattr(const char *path, struct stat *st,
                        struct fuse_file_info *fi)
{
    struct fuse_disk *d = disk();
    struct stat host;
    bool have_host;

    (void)fi;
    memset(st, 0, sizeof *st);
    /* The descriptor was opened before mounting: stat() of the name
     * could enter this very mount when it covers the image file. */
    have_host = fstat(d->stat_fd, &host) == 0;
    if (have_host) {
        st->st_atim = host.st_atim;
        st->st_mtim = host.st_mtim;
        st->st_ctim = host.st_ctim;
    }
    st->st_uid = d->uid;
    st->st_gid = d->gid;
    if (is_dir(d, path)) {
        st->st_mode = S_IFDIR | (d->read_only ? 0555 : 0755);
        st->st_nlink = 2;
        return 0;
    }
    if (!is_disk(d, path))
        return -ENOENT;
    st->st_mode = S_IFREG | (d->read_only ? 0400 : 0600);
    st->st_nlink = 1;
    st->st_size = (off_t)d->size;
    /* What the image takes on the host (its backing files not counted). */
    st->st_blocks = have_host ? host.st_blocks : 0;
    st->st_blksize = 4096;
    return 0;
}

static int disk_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
                        off_t offset, struct fuse_file_info *fi,
                        enum fuse_readdir_flags flags)
{
    struct fuse_disk *d = disk();

    (void)offset;
    (void)fi;
    (void)flags;
    if (!is_dir(d, path))
        return -ENOTDIR;
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    filler(buf, FUSE_DISK_NAME, NULL, 0, 0);
    return 0;
}

static int disk_open(const char *path, struct fuse_file_info *fi)
{
    struct fuse_disk *d = disk();

    if (is_dir(d, path))
        return -EISDIR;
    if (!is_disk(d, path))
        return -ENOENT;
    if (d->read_only && (fi->flags & O_ACCMODE) != O_RDONLY)
        return -EROFS;
    fi->keep_cache = d->keep_cache;
    return 0;
}

static int disk_read(const char *path, char *buf, size_t count, off_t offset,
                     struct fuse_file_info *fi)
{
    struct fuse_disk *d = disk();
    uint64_t off = (uint64_t)offset, size = d->size;
    int err = 0;

    (void)path;
    (void)fi;
    if (offset < 0)
        return -EINVAL;
    if (off >= size)
        count = 0;
    else if (count > size - off)
        count = (size_t)(size - off);
    if (count)
        err = qcowkit_pread(d->img, buf, count, off);
    if (err < 0)
        return lib_failed(d, err);
    return (int)count;
}

static int disk_write(const char *path, const char *buf, size_t count,
                      off_t offset, struct fuse_file_info *fi)
{
    struct fuse_disk *d = disk();
    uint64_t off = (uint64_t)offset, size = d->size;
    int err = 0;

    (void)path;
    (void)fi;
    if (d->read_only)
        return -EROFS;
    if (offset < 0)
        return -EINVAL;
    if (count == 0)
        return 0;
    /* As a block device: a write past the end is cut short, and one
     * that starts at the end fails with ENOSPC. */
    if (off >= size)
        err = -ENOSPC;
    else {
        if (count > size - off)
            count = (size_t)(size - off);
        err = qcowkit_pwrite(d->img, buf, count, off);
        if (err < 0)
            err = lib_failed(d, err);
    }
    return err < 0 ? err : (int)count;
}

static int flush_image(struct fuse_disk *d)
{
    int err;

    if (d->read_only)
        return 0;
    err = qcowkit_flush(d->img);
    return err < 0 ? lib_failed(d, err) : 0;
}

/* close(2) of a descriptor that could write: make its writes durable. */
static int disk_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    if ((fi->flags & O_ACCMODE) == O_RDONLY)
        return 0;
    return flush_image(disk());
}

static int disk_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    (void)fi;
    return flush_image(disk());
}

/* truncate(2) resizes the disk (qcow rounds up to 512). */
static int disk_truncate(const char *path, off_t size,
                         struct fuse_file_info *fi)
{
    struct fuse_disk *d = disk();
    struct qcowkit_info info;
    int err = 0;

    (void)fi;
    if (is_dir(d, path))
        return -EISDIR;
    if (!is_disk(d, path))
        return -ENOENT;
    if (d->read_only)
        return -EROFS;
    if (size < 0)
        return -EINVAL;
    if ((uint64_t)size != d->size) {
        err = qcowkit_resize(d->img, (uint64_t)size);
        if (err < 0)
            err = lib_failed(d, err);
        /* Whatever happened, report the size the image now has. */
        if (cli_get_info(d->img, &info) == 0)
            d->size = info.virtual_size;
    }
    return err;
}

/*
 * Punching a hole or zeroing a range writes zeros, which leaves clusters
 * unallocated where the library can.  Plain preallocation has no meaning
 * for an image that allocates on write, and is refused.
 */
static int disk_fallocate(const char *path, int mode, off_t offset,
                          off_t length, struct fuse_file_info *fi)
{
    struct fuse_disk *d = disk();
    uint64_t off = (uint64_t)offset, len = (uint64_t)length, size = d->size;
    /* A punched range reads zeros, never the backing file: MAY_UNMAP
     * gives whole clusters back and zeroes the partial ends. */
    unsigned zero_flags =
        (mode & FALLOC_FL_PUNCH_HOLE) ? QCOWKIT_ZEROES_MAY_UNMAP : 0;
    int err = 0;

    (void)path;
    (void)fi;
    if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
        mode != FALLOC_FL_ZERO_RANGE &&
        mode != (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE))
        return -EOPNOTSUPP;
    if (d->read_only)
        return -EROFS;
    if (offset < 0 || length <= 0)
        return -EINVAL;
    /* Without KEEP_SIZE the file would grow over the range: the disk does
     * not (a write past its end fails too), so refuse as a block device
     * does rather than report a size that is not there. */
    if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > size)
        return -EINVAL;
    if (off < size) {
        if (len > size - off)
            len = size - off;
        while (len > 0 && err == 0) {
            size_t n =
                len > (UINT64_C(1) << 30) ? (size_t)1 << 30 : (size_t)len;
            err = qcowkit_pwrite_zeroes_flags(d->img, n, off, zero_flags);
            off += n;
            len -= n;
        }
    }
    return err < 0 ? lib_failed(d, err) : 0;
}

const struct fuse_operations fuse_disk_ops = {
    .init = disk_init,
    .getattr = disk_getattr,
    .readdir = disk_readdir,
    .open = disk_open,
    .read = disk_read,
    .write = disk_write,
    .flush = disk_flush,
    .fsync = disk_fsync,
    .truncate = disk_truncate,
    .fallocate = disk_fallocate,
};
