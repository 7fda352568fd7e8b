/*
 * chain.c - the guest disk: the image read through the plugin, over the
 * local backing file given as qcow-backing=.
 *
 * The library opens a backing file by the name the image stores, which
 * means nothing on the machine serving the image, so the image is opened
 * without its chain and its unallocated runs are read from the backing
 * image opened here (itself with its own chain, by the library).  Both
 * handles are thread-safe; nothing here holds state between calls.
 */
#include <errno.h>
#include <string.h>

#include "qcow-filter.h"

int qf_fail(int ret, int *err)
{
    nbdkit_error("%s", qcowkit_errmsg());
    if (err)
        *err = -ret;
    return -1;
}

/* The backing image's bytes; past its end (a smaller backing file), zeros. */
static int read_backing(struct qf_conn *conn, uint8_t *buf, uint64_t count,
                        uint64_t offset, int *err)
{
    uint64_t inside = 0;
    int ret;

    if (offset < conn->backing_size)
        inside = conn->backing_size - offset < count
                     ? conn->backing_size - offset
                     : count;
    memset(buf + inside, 0, count - inside);
    if (inside == 0)
        return 0;
    ret = qcowkit_pread(conn->backing, buf, inside, offset);
    return ret < 0 ? qf_fail(ret, err) : 0;
}

int qf_read(struct qf_conn *conn, void *buf, uint32_t count, uint64_t offset,
            int *err)
{
    struct qcowkit_chain_extent run;
    uint8_t *p = buf;
    uint64_t end = offset + count;
    int ret;

    if (!conn->backing) {
        ret = qcowkit_pread(conn->img, buf, count, offset);
        return ret < 0 ? qf_fail(ret, err) : 0;
    }
    qcowkit_chain_extent_init(&run);
    while (offset < end) {
        ret = qcowkit_block_status_chain(conn->img, offset, end - offset, &run);
        if (ret < 0)
            return qf_fail(ret, err);
        if (!(run.flags & QCOWKIT_EXTENT_ALLOCATED)) {
            if (read_backing(conn, p, run.length, offset, err) == -1)
                return -1;
        } else if ((ret = qcowkit_pread(conn->img, p, run.length, offset)) < 0)
            return qf_fail(ret, err);
        p += run.length;
        offset += run.length;
    }
    return 0;
}

static uint32_t extent_type(unsigned flags)
{
    return flags & QCOWKIT_EXTENT_ZERO ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO
                                       : 0;
}

static int add(struct nbdkit_extents *extents, uint64_t offset, uint64_t length,
               uint32_t type, int *err)
{
    if (nbdkit_add_extent(extents, offset, length, type) == -1) {
        *err = errno ? errno : ENOMEM;
        return -1;
    }
    return 0;
}

/* [offset, end) is unallocated in the image: the backing file's map. */
static int backing_extents(struct qf_conn *conn, uint64_t offset, uint64_t end,
                           struct nbdkit_extents *extents, int *err)
{
    const uint32_t zeros = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    uint64_t inside = end < conn->backing_size ? end : conn->backing_size;
    struct qcowkit_chain_extent run;
    int ret;

    qcowkit_chain_extent_init(&run);
    while (offset < inside) {
        ret = qcowkit_block_status_chain(conn->backing, offset, inside - offset,
                                         &run);
        if (ret < 0)
            return qf_fail(ret, err);
        if (add(extents, offset, run.length, extent_type(run.flags), err) < 0)
            return -1;
        offset += run.length;
    }
    return offset < end ? add(extents, offset, end - offset, zeros, err) : 0;
}

int qf_extents(struct qf_conn *conn, uint32_t count, uint64_t offset,
               uint32_t flags, struct nbdkit_extents *extents, int *err)
{
    struct qcowkit_chain_extent run;
    uint64_t end = offset + count;
    int ret;

    qcowkit_chain_extent_init(&run);
    while (offset < end) {
        ret = qcowkit_block_status_chain(conn->img, offset, end - offset, &run);
        if (ret < 0)
            return qf_fail(ret, err);
        if (conn->backing && !(run.flags & QCOWKIT_EXTENT_ALLOCATED))
            ret = backing_extents(conn, offset, offset + run.length, extents,
                                  err);
        else
            ret = add(extents, offset, run.length, extent_type(run.flags), err);
        if (ret < 0)
            return -1;
        offset += run.length;
        if (flags & NBDKIT_FLAG_REQ_ONE)
            break;
    }
    return 0;
}
