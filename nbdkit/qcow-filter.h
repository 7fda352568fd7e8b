/*
 * qcow-filter.h - what the files of nbdkit-qcow-filter share.
 *
 * The filter decodes a qcow (version 1) image that the plugin under it
 * serves, through libqcowkit's public interface only: backend.c turns
 * the plugin into a struct qcowkit_io, chain.c reads and maps the guest
 * disk (adding a local backing file given as qcow-backing=), filter.c is
 * what nbdkit calls.
 */
#ifndef QCOW_FILTER_H
#define QCOW_FILTER_H

#include <stdint.h>

#include <nbdkit-filter.h>

#include "qcowkit.h"

/* One client connection: its own handles, so nothing is shared. */
struct qf_conn {
    nbdkit_next *next;         /* the plugin, stable from .prepare on */
    uint64_t plugin_size;      /* bytes the plugin serves (the image file) */
    struct qcowkit_io *io;     /* the plugin as a libqcowkit backend */
    struct qcowkit_image *img; /* opened without its backing chain */
    struct qcowkit_image *backing; /* qcow-backing=FILE, or NULL */
    uint64_t backing_size;         /* virtual size of backing */
    uint64_t size;                 /* virtual size of img */
};

/* backend.c: a read-only backend over conn->next; sets conn->io. */
int qf_backend_open(struct qf_conn *conn);

/* chain.c: the guest disk, img over backing.  0, or -1 with *err set. */
int qf_read(struct qf_conn *conn, void *buf, uint32_t count, uint64_t offset,
            int *err);
int qf_extents(struct qf_conn *conn, uint32_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_extents *extents, int *err);

/* A failed library call: its message to nbdkit, its errno to *err (the
 * filter API's way; nbdkit_set_error is for plugins). */
int qf_fail(int ret, int *err);

#endif /* QCOW_FILTER_H */
