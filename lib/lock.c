/*
 * Image locks.  The library asks a backend for a lock mode through its
 * lock function; several images over one backend share its lock, which
 * holds the strongest mode any of them needs.
 *
 * The file backend's locks are the ones QEMU honours: OFD byte-range read
 * locks on the bytes QEMU's file driver uses for its permissions.  Byte
 * 100+p says "I use permission p"; byte 200+p says "nobody else may use
 * p".  Permissions: 0 consistent read, 1 write, 3 resize.  Locks go with
 * the descriptor.
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

/* The bytes of the file backend's locks, and the least mode holding each. */
static const struct {
    short byte;
    unsigned mode;
} lock_bytes[] = {
    {USE_BASE + PERM_READ, QCOWKIT_IO_LOCK_READ},
    {USE_BASE + PERM_WRITE, QCOWKIT_IO_LOCK_WRITE},
    {USE_BASE + PERM_RESIZE, QCOWKIT_IO_LOCK_WRITE},
    {DENY_BASE + PERM_WRITE, QCOWKIT_IO_LOCK_READ},
    {DENY_BASE + PERM_RESIZE, QCOWKIT_IO_LOCK_READ},
};

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

/* Hold exactly the bytes of mode: new ones are taken, others let go. */
static int set_bytes(int fd, unsigned mode)
{
    int err = 0;

    for (size_t i = 0; err == 0 && i < sizeof lock_bytes / sizeof *lock_bytes;
         i++)
        err = ofd_lock(fd, mode >= lock_bytes[i].mode ? F_RDLCK : F_UNLCK,
                       lock_bytes[i].byte);
    return err;
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

int qk_ofd_lock(int fd, unsigned held, unsigned mode, const char **why)
{
    const char *reason;
    int err = set_bytes(fd, mode);

    if (err == -EINVAL || err == -ENOLCK || err == -EOPNOTSUPP)
        return 0; /* a file system without locks: nothing to honour */
    /* Ours are taken first, then others looked for: no window between. */
    if (err < 0)
        reason = "its lock bytes are taken";
    else
        reason = mode ? conflict(fd, mode == QCOWKIT_IO_LOCK_WRITE) : NULL;
    if (!reason)
        return 0;
    set_bytes(fd, held);
    *why = reason;
    return -EBUSY;
}

static unsigned mode_needed(const struct qcowkit_io *io)
{
    if (io->lock_writers)
        return QCOWKIT_IO_LOCK_WRITE;
    return io->lock_readers ? QCOWKIT_IO_LOCK_READ : QCOWKIT_IO_LOCK_NONE;
}

static int lock_image_guarded(struct qcowkit_io *io, bool write,
                              const char *name)
{
    unsigned mode = write ? QCOWKIT_IO_LOCK_WRITE : QCOWKIT_IO_LOCK_READ;
    const char *why = NULL;
    int err = 0;

    if (mode < io->lock_mode)
        mode = io->lock_mode;
    if (mode != io->lock_mode)
        err = qk_io_lock_op(io, mode, &why);
    if (err == -EBUSY)
        return qk_error(-EBUSY,
                        "%s: image is in use: %s (to read it anyway, open it "
                        "read-only with force-share, -U)",
                        name, why ? why : "another user holds its lock");
    if (err < 0)
        return qk_error(err, "%s: cannot lock the image: %s", name,
                        strerror(-err));
    io->lock_mode = mode;
    if (write)
        io->lock_writers++;
    else
        io->lock_readers++;
    return 0;
}

int qk_lock_image(struct qcowkit_io *io, bool write, const char *name)
{
    int err;

    pthread_mutex_lock(&io->lock_guard);
    err = lock_image_guarded(io, write, name);
    pthread_mutex_unlock(&io->lock_guard);
    return err;
}

void qk_unlock_image(struct qcowkit_io *io, bool write)
{
    const char *why = NULL;
    unsigned mode;

    pthread_mutex_lock(&io->lock_guard);
    if (write)
        io->lock_writers--;
    else
        io->lock_readers--;
    mode = mode_needed(io);
    /* Letting go cannot conflict; a failure leaves more held, not less. */
    if (mode != io->lock_mode && qk_io_lock_op(io, mode, &why) == 0)
        io->lock_mode = mode;
    pthread_mutex_unlock(&io->lock_guard);
}
