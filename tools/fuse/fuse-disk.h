/* fuse-disk.h - state shared by qcowkit mount (mount.c) and its FUSE
 * operations (ops.c).  Only built when libfuse 3 is found. */
#ifndef QCOWKIT_FUSE_DISK_H
#define QCOWKIT_FUSE_DISK_H

#define FUSE_USE_VERSION 31

#include <fuse.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qcowkit.h"

/* The name of the disk when the mountpoint is a folder. */
#define FUSE_DISK_NAME "disk"

struct fuse_disk {
    struct qcowkit_image *img;
    /* The virtual size: set by truncate while reads and writes run. */
    _Atomic uint64_t size;
    bool read_only;  /* -r: writes and resizes fail with EROFS */
    bool dir_mode;   /* the mountpoint is a folder: the disk is /disk */
    bool keep_cache; /* nobody else can write the image (it is locked) */
    bool verbose;    /* report library errors on stderr (foreground) */
    int stat_fd;     /* O_PATH descriptor of the image file, for times */
    uid_t uid;
    gid_t gid;
};

/* The FUSE operations; private_data is a struct fuse_disk. */
extern const struct fuse_operations fuse_disk_ops;

#endif /* QCOWKIT_FUSE_DISK_H */
