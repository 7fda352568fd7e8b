/*
 * backend.c - the plugin under the filter as a libqcowkit I/O backend.
 *
 * Read-only: the filter exports the guest disk read-only, so writes and
 * truncation are refused.  Reads go to next->pread as they come, so the
 * runs of contiguous clusters that the library merges reach the plugin
 * (an HTTP range request, say) as one request.
 */
#include <errno.h>
#include <string.h>

#include "qcow-filter.h"

/* nbdkit requests carry a 32-bit count: bigger reads go in such pieces. */
#define MAX_PLUGIN_READ (UINT32_C(1) << 31)

static int plugin_error(int err)
{
    return err > 0 ? -err : -EIO;
}

/* Bytes past the end of what the plugin serves read as zeros. */
static int plugin_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct qf_conn *conn = opaque;
    uint8_t *p = buf;
    size_t inside = 0;
    int err = 0;

    if (offset < conn->plugin_size)
        inside = conn->plugin_size - offset < count
                     ? (size_t)(conn->plugin_size - offset)
                     : count;
    memset(p + inside, 0, count - inside);
    while (inside > 0) {
        uint32_t n =
            inside < MAX_PLUGIN_READ ? (uint32_t)inside : MAX_PLUGIN_READ;

        if (conn->next->pread(conn->next, p, n, offset, 0, &err) == -1)
            return plugin_error(err);
        p += n;
        offset += n;
        inside -= n;
    }
    return 0;
}

static int refuse_pwrite(void *opaque, const void *buf, size_t count,
                         uint64_t offset)
{
    (void)opaque, (void)buf, (void)count, (void)offset;
    return -EROFS;
}

static int no_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int plugin_get_size(void *opaque, uint64_t *size)
{
    *size = ((struct qf_conn *)opaque)->plugin_size;
    return 0;
}

static int refuse_truncate(void *opaque, uint64_t size)
{
    (void)opaque, (void)size;
    return -EROFS;
}

int qf_backend_open(struct qf_conn *conn)
{
    struct qcowkit_io_ops ops;
    int64_t size;
    int ret;

    size = conn->next->get_size(conn->next);
    if (size < 0)
        return -1;
    conn->plugin_size = (uint64_t)size;
    qcowkit_io_ops_init(&ops);
    ops.pread = plugin_pread;
    ops.pwrite = refuse_pwrite;
    ops.flush = no_flush;
    ops.get_size = plugin_get_size;
    ops.truncate = refuse_truncate;
    /* No close (conn is the filter's), no lock, no extent: the image is
     * a qcow file, whose holes the library finds in its own tables. */
    ret = qcowkit_io_new(&ops, conn, "plugin", &conn->io);
    return ret < 0 ? qf_fail(ret, NULL) : 0;
}
