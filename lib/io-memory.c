/* The in-memory backend: a growable buffer, for tests and fuzzing. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct memory_backend {
    pthread_mutex_t lock;
    uint8_t *data;
    size_t len;
    size_t cap;
};

static int grow(struct memory_backend *m, uint64_t end)
{
    size_t cap;
    uint8_t *p;

    if (end > SIZE_MAX / 2)
        return -EFBIG;
    if (end <= m->cap)
        return 0;
    cap = m->cap ? m->cap : 4096;
    while (cap < end)
        cap *= 2;
    p = realloc(m->data, cap);
    if (!p)
        return -ENOMEM;
    memset(p + m->cap, 0, cap - m->cap);
    m->data = p;
    m->cap = cap;
    return 0;
}

static int memory_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct memory_backend *m = opaque;
    size_t have = 0;

    if (count == 0)
        return 0;
    pthread_mutex_lock(&m->lock);
    if (offset < m->len)
        have = m->len - offset < count ? m->len - offset : count;
    memcpy(buf, m->data + (have ? offset : 0), have);
    memset((uint8_t *)buf + have, 0, count - have);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int memory_pwrite(void *opaque, const void *buf, size_t count,
                         uint64_t offset)
{
    struct memory_backend *m = opaque;
    int err;

    if (count == 0)
        return 0;
    if (offset > UINT64_MAX - count)
        return -EFBIG;
    pthread_mutex_lock(&m->lock);
    err = grow(m, offset + count);
    if (err == 0) {
        memcpy(m->data + offset, buf, count);
        if (offset + count > m->len)
            m->len = offset + count;
    }
    pthread_mutex_unlock(&m->lock);
    return err;
}

static int memory_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int memory_get_size(void *opaque, uint64_t *size)
{
    struct memory_backend *m = opaque;
    pthread_mutex_lock(&m->lock);
    *size = m->len;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int memory_truncate(void *opaque, uint64_t size)
{
    struct memory_backend *m = opaque;
    int err;

    pthread_mutex_lock(&m->lock);
    err = grow(m, size);
    if (err == 0) {
        if (size < m->len)
            memset(m->data + size, 0, m->len - size);
        m->len = size;
    }
    pthread_mutex_unlock(&m->lock);
    return err;
}

static int memory_discard(void *opaque, uint64_t offset, uint64_t length)
{
    struct memory_backend *m = opaque;

    pthread_mutex_lock(&m->lock);
    if (offset < m->len) {
        size_t n = m->len - offset < length ? m->len - offset : length;
        memset(m->data + offset, 0, n);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static void memory_close(void *opaque)
{
    struct memory_backend *m = opaque;
    pthread_mutex_destroy(&m->lock);
    free(m->data);
    free(m);
}

static const struct qcowkit_io_ops memory_ops = {
    .struct_size = sizeof(struct qcowkit_io_ops),
    .pread = memory_pread,
    .pwrite = memory_pwrite,
    .flush = memory_flush,
    .get_size = memory_get_size,
    .truncate = memory_truncate,
    .close = memory_close,
    .discard = memory_discard,
};

int qcowkit_io_new_memory(const void *data, size_t len, struct qcowkit_io **io)
{
    struct memory_backend *m;
    int err;

    *io = NULL;
    m = calloc(1, sizeof *m);
    if (!m)
        return qk_error(-ENOMEM, "memory: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    if (len > 0) {
        err = grow(m, len);
        if (err < 0) {
            memory_close(m);
            return qk_error(err, "memory: cannot hold %zu bytes", len);
        }
        memcpy(m->data, data, len);
        m->len = len;
    }
    err = qk_io_make(&memory_ops, m, "memory", io);
    if (err < 0)
        memory_close(m);
    return err;
}

int qcowkit_io_memory_data(struct qcowkit_io *io, const uint8_t **data,
                           size_t *len)
{
    struct memory_backend *m;

    if (!io || io->ops.pread != memory_pread) /* only memory has it */
        return qk_error(-EINVAL, "qcowkit_io_memory_data: not a memory "
                                 "backend");
    m = io->opaque;
    pthread_mutex_lock(&m->lock);
    *data = m->data;
    *len = m->len;
    pthread_mutex_unlock(&m->lock);
    return 0;
}
