/*
 * Image locks that QEMU honours: OFD byte-range read locks on the bytes
 * QEMU's file driver uses for its permissions.  Byte 100+p says "I use
 * permission p"; byte 200+p says "nobody else may use p".  Permissions:
 * 0 consistent read, 1 write, 3 resize.  Locks go with the descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "internal.h"

#define USE_BASE    100
#define DENY_BASE   200
#define PERM_READ   0
#define PERM_WRITE  1
#define PERM_RESIZE 3

static int ofd_lock(int fd, short type, off_t byte)
{
    struct flock fl = {
        .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* Does another descriptor hold a lock on this byte? */
static bool held_elsewhere(int fd, off_t byte)
{
    struct flock fl = {
        .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return false;
    return fl.l_type != F_UNLCK;
}

static void unlock_all(int fd)
{
    struct flock fl = {
        .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    fcntl(fd, F_OFD_SETLK, &fl);
}

static const char *conflict(int fd, bool write)
{
    if (held_elsewhere(fd, USE_BASE + PERM_WRITE) ||
        held_elsewhere(fd, USE_BASE + PERM_RESIZE))
        return "another process writes it";
    if (held_elsewhere(fd, DENY_BASE + PERM_READ))
        return "another process forbids reading it";
    if (write && (held_elsewhere(fd, DENY_BASE + PERM_WRITE) ||
                  held_elsewhere(fd, DENY_BASE + PERM_RESIZE)))
        return "another process uses it and forbids writing";
    return NULL;
}

int qk_lock_image(struct qcowkit_io *io, bool write, const char *name)
{
    int fd = qk_file_fd(io);
    static const short uses_rw[] = {PERM_READ, PERM_WRITE, PERM_RESIZE};
    const char *why;
    int err = 0;

    if (fd < 0)
        return 0;
    /* Take ours first, then look for others: no window between. */
    for (unsigned i = 0; err == 0 && i < (write ? 3u : 1u); i++)
        err = ofd_lock(fd, F_RDLCK, USE_BASE + uses_rw[i]);
    if (err == 0)
        err = ofd_lock(fd, F_RDLCK, DENY_BASE + PERM_WRITE);
    if (err == 0)
        err = ofd_lock(fd, F_RDLCK, DENY_BASE + PERM_RESIZE);
    why = err == 0 ? conflict(fd, write) : "its lock bytes are taken";
    if (err == -EINVAL || err == -ENOLCK || err == -EOPNOTSUPP)
        return 0; /* a file system without locks: nothing to honour */
    if (!why)
        return 0;
    unlock_all(fd);
    return qk_error(-EBUSY,
                    "%s: image is in use: %s (to read it anyway, open it "
                    "read-only with force-share, -U)",
                    name, why);
}
