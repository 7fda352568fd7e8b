/* A backend wrapper that fails chosen calls, for error-path tests. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "wrapper.h"

#define OP_COUNT 4

struct fault_rule {
    uint64_t seen; /* calls of this op so far */
    uint64_t nth;  /* 0: disarmed */
    bool persistent;
    int error;
};

struct fault_backend {
    struct wrapper_link link;
    pthread_mutex_t lock;
    struct qcowkit_io *inner;
    struct fault_rule rules[OP_COUNT];
};

/* Count a call of op and tell whether it must fail (and with what). */
static int should_fail(struct fault_backend *f, enum fault_op op)
{
    struct fault_rule *r = &f->rules[op];
    int err = 0;

    pthread_mutex_lock(&f->lock);
    r->seen++;
    if (r->nth && (r->seen == r->nth || (r->persistent && r->seen > r->nth)))
        err = r->error;
    pthread_mutex_unlock(&f->lock);
    return err;
}

static int fault_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct fault_backend *f = opaque;
    int err = should_fail(f, FAULT_OP_READ);
    return err ? err : qcowkit_io_pread(f->inner, buf, count, offset);
}

static int fault_pwrite(void *opaque, const void *buf, size_t count,
                        uint64_t offset)
{
    struct fault_backend *f = opaque;
    int err = should_fail(f, FAULT_OP_WRITE);
    return err ? err : qcowkit_io_pwrite(f->inner, buf, count, offset);
}

static int fault_flush(void *opaque)
{
    struct fault_backend *f = opaque;
    int err = should_fail(f, FAULT_OP_FLUSH);
    return err ? err : qcowkit_io_flush(f->inner);
}

static int fault_get_size(void *opaque, uint64_t *size)
{
    struct fault_backend *f = opaque;
    return qcowkit_io_get_size(f->inner, size);
}

static int fault_truncate(void *opaque, uint64_t size)
{
    struct fault_backend *f = opaque;
    int err = should_fail(f, FAULT_OP_TRUNCATE);
    return err ? err : qcowkit_io_truncate(f->inner, size);
}

static int fault_discard(void *opaque, uint64_t offset, uint64_t length)
{
    struct fault_backend *f = opaque;
    int err = should_fail(f, FAULT_OP_WRITE);
    return err ? err : qcowkit_io_discard(f->inner, offset, length);
}

/* Locks and extents are the inner backend's, never failed. */
static int fault_lock(void *opaque, unsigned mode, const char **why)
{
    struct fault_backend *f = opaque;
    return qcowkit_io_lock(f->inner, mode, why);
}

static int fault_extent(void *opaque, uint64_t offset, uint64_t *length,
                        int *hole)
{
    struct fault_backend *f = opaque;
    return qcowkit_io_extent(f->inner, offset, length, hole);
}

static void fault_close(void *opaque)
{
    struct fault_backend *f = opaque;

    wrapper_forget(&f->link);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static const struct qcowkit_io_ops fault_ops = {
    .struct_size = sizeof(struct qcowkit_io_ops),
    .pread = fault_pread,
    .pwrite = fault_pwrite,
    .flush = fault_flush,
    .get_size = fault_get_size,
    .truncate = fault_truncate,
    .close = fault_close,
    .discard = fault_discard,
    .lock = fault_lock,
    .extent = fault_extent,
};

int fault_backend_new(struct qcowkit_io *inner, struct qcowkit_io **io)
{
    struct fault_backend *f;
    int err;

    *io = NULL;
    if (!inner)
        return wrapper_fail(-EINVAL, "fault_backend_new: no inner backend");
    f = calloc(1, sizeof *f);
    if (!f)
        return wrapper_fail(-ENOMEM, "fault: out of memory");
    pthread_mutex_init(&f->lock, NULL);
    f->inner = inner;
    err = wrapper_make(&fault_ops, f, inner, &f->link, io);
    if (err < 0)
        fault_close(f);
    return err;
}

static struct fault_backend *as_fault(struct qcowkit_io *io, enum fault_op op)
{
    if ((unsigned)op >= OP_COUNT)
        return NULL;
    return wrapper_find(io, &fault_ops);
}

int fault_backend_arm(struct qcowkit_io *io, enum fault_op op, uint64_t nth,
                      int persistent, int error)
{
    struct fault_backend *f = as_fault(io, op);

    if (!f || (nth && error >= 0))
        return wrapper_fail(-EINVAL, "fault_backend_arm: bad arguments");
    pthread_mutex_lock(&f->lock);
    f->rules[op].nth = nth ? f->rules[op].seen + nth : 0;
    f->rules[op].persistent = persistent != 0;
    f->rules[op].error = error;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

uint64_t fault_backend_count(struct qcowkit_io *io, enum fault_op op)
{
    struct fault_backend *f = as_fault(io, op);
    uint64_t seen;

    if (!f)
        return 0;
    pthread_mutex_lock(&f->lock);
    seen = f->rules[op].seen;
    pthread_mutex_unlock(&f->lock);
    return seen;
}
