/* Power-loss simulation: the flushed state plus a log of what came after. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wrapper.h"

#define SECTOR 512 /* a torn write keeps or loses whole sectors */

struct pending {
    uint64_t offset;
    size_t len;
    uint8_t *data; /* NULL: a truncate to offset */
};

struct crash_backend {
    struct wrapper_link link;
    pthread_mutex_t lock;
    struct qcowkit_io *inner;
    struct qcowkit_io *durable; /* the state as of the last flush */
    struct pending *log;
    size_t logged;
    size_t log_cap;
    uint64_t writes;
    uint64_t crash_at; /* 0: never */
    bool dead;
};

static int remember(struct crash_backend *c, const void *buf, size_t len,
                    uint64_t offset)
{
    struct pending *p;

    if (c->logged == c->log_cap) {
        size_t cap = c->log_cap ? c->log_cap * 2 : 64;
        p = realloc(c->log, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        c->log = p;
        c->log_cap = cap;
    }
    p = &c->log[c->logged];
    p->offset = offset;
    p->len = len;
    p->data = NULL;
    if (buf) {
        p->data = malloc(len ? len : 1);
        if (!p->data)
            return -ENOMEM;
        memcpy(p->data, buf, len);
    }
    c->logged++;
    return 0;
}

static void forget_log(struct crash_backend *c)
{
    for (size_t i = 0; i < c->logged; i++)
        free(c->log[i].data);
    c->logged = 0;
}

/* Count a write or truncate; at the armed one, the power goes. */
static int begin_write(struct crash_backend *c, const void *buf, size_t len,
                       uint64_t offset)
{
    if (c->dead)
        return -EIO;
    c->writes++;
    if (c->crash_at && c->writes == c->crash_at) {
        c->dead = true;
        remember(c, buf, len, offset); /* it was in flight */
        return -EIO;
    }
    return remember(c, buf, len, offset);
}

static int crash_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct crash_backend *c = opaque;
    int err;

    pthread_mutex_lock(&c->lock);
    err = c->dead ? -EIO : qcowkit_io_pread(c->inner, buf, count, offset);
    pthread_mutex_unlock(&c->lock);
    return err;
}

static int crash_pwrite(void *opaque, const void *buf, size_t count,
                        uint64_t offset)
{
    struct crash_backend *c = opaque;
    int err;

    pthread_mutex_lock(&c->lock);
    err = begin_write(c, buf, count, offset);
    if (err == 0)
        err = qcowkit_io_pwrite(c->inner, buf, count, offset);
    pthread_mutex_unlock(&c->lock);
    return err;
}

static int crash_truncate(void *opaque, uint64_t size)
{
    struct crash_backend *c = opaque;
    int err;

    pthread_mutex_lock(&c->lock);
    err = begin_write(c, NULL, 0, size);
    if (err == 0)
        err = qcowkit_io_truncate(c->inner, size);
    pthread_mutex_unlock(&c->lock);
    return err;
}

/* A punched range reads as zeros: logged as a write of zeros, so that a
 * crash may keep, drop or tear it like any unflushed write. */
static int crash_discard(void *opaque, uint64_t offset, uint64_t length)
{
    struct crash_backend *c = opaque;
    uint8_t *zeros = length <= SIZE_MAX ? calloc(1, length ? length : 1) : NULL;
    int err;

    if (!zeros)
        return -ENOMEM;
    pthread_mutex_lock(&c->lock);
    err = begin_write(c, zeros, (size_t)length, offset);
    if (err == 0)
        err = qcowkit_io_discard(c->inner, offset, length);
    pthread_mutex_unlock(&c->lock);
    free(zeros);
    return err;
}

static int apply(struct qcowkit_io *io, const struct pending *p)
{
    if (!p->data)
        return qcowkit_io_truncate(io, p->offset);
    return qcowkit_io_pwrite(io, p->data, p->len, p->offset);
}

static int crash_flush(void *opaque)
{
    struct crash_backend *c = opaque;
    int err = 0;

    pthread_mutex_lock(&c->lock);
    if (c->dead)
        err = -EIO;
    for (size_t i = 0; err == 0 && i < c->logged; i++)
        err = apply(c->durable, &c->log[i]);
    if (err == 0)
        forget_log(c);
    pthread_mutex_unlock(&c->lock);
    return err;
}

static int crash_get_size(void *opaque, uint64_t *size)
{
    struct crash_backend *c = opaque;
    int err;

    pthread_mutex_lock(&c->lock);
    err = c->dead ? -EIO : qcowkit_io_get_size(c->inner, size);
    pthread_mutex_unlock(&c->lock);
    return err;
}

/* Locks and extents are the inner backend's: it holds every write. */
static int crash_lock(void *opaque, unsigned mode, const char **why)
{
    struct crash_backend *c = opaque;
    return qcowkit_io_lock(c->inner, mode, why);
}

static int crash_extent(void *opaque, uint64_t offset, uint64_t *length,
                        int *hole)
{
    struct crash_backend *c = opaque;
    int err;

    pthread_mutex_lock(&c->lock);
    err = c->dead ? -EIO : qcowkit_io_extent(c->inner, offset, length, hole);
    pthread_mutex_unlock(&c->lock);
    return err;
}

static void crash_close(void *opaque)
{
    struct crash_backend *c = opaque;

    wrapper_forget(&c->link);
    forget_log(c);
    free(c->log);
    qcowkit_io_close(c->durable);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static const struct qcowkit_io_ops crash_ops = {
    .struct_size = sizeof(struct qcowkit_io_ops),
    .pread = crash_pread,
    .pwrite = crash_pwrite,
    .flush = crash_flush,
    .get_size = crash_get_size,
    .truncate = crash_truncate,
    .close = crash_close,
    .discard = crash_discard,
    .lock = crash_lock,
    .extent = crash_extent,
};

/* A memory backend holding a copy of everything in src. */
static int copy_backend(struct qcowkit_io *src, struct qcowkit_io **copy)
{
    uint64_t size;
    uint8_t *bytes;
    int err = qcowkit_io_get_size(src, &size);

    if (err < 0)
        return err;
    if (size > SIZE_MAX)
        return -EFBIG;
    bytes = malloc(size ? size : 1);
    if (!bytes)
        return -ENOMEM;
    err = qcowkit_io_pread(src, bytes, size, 0);
    if (err == 0)
        err = qcowkit_io_new_memory(bytes, size, copy);
    free(bytes);
    return err;
}

int crash_backend_new(struct qcowkit_io *inner, struct qcowkit_io **io)
{
    struct crash_backend *c;
    int err;

    *io = NULL;
    if (!inner)
        return wrapper_fail(-EINVAL, "crash_backend_new: no inner backend");
    c = calloc(1, sizeof *c);
    if (!c)
        return wrapper_fail(-ENOMEM, "crash: out of memory");
    pthread_mutex_init(&c->lock, NULL);
    c->inner = inner;
    err = copy_backend(inner, &c->durable);
    if (err < 0) {
        crash_close(c);
        return wrapper_fail(err, "crash: cannot snapshot the inner backend");
    }
    err = wrapper_make(&crash_ops, c, inner, &c->link, io);
    if (err < 0)
        crash_close(c);
    return err;
}

static struct crash_backend *as_crash(struct qcowkit_io *io)
{
    return wrapper_find(io, &crash_ops);
}

int crash_backend_arm(struct qcowkit_io *io, uint64_t nth)
{
    struct crash_backend *c = as_crash(io);

    if (!c)
        return wrapper_fail(-EINVAL, "crash_backend_arm: not a crash backend");
    pthread_mutex_lock(&c->lock);
    c->crash_at = nth ? c->writes + nth : 0;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

uint64_t crash_backend_writes(struct qcowkit_io *io)
{
    struct crash_backend *c = as_crash(io);
    uint64_t writes;

    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    writes = c->writes;
    pthread_mutex_unlock(&c->lock);
    return writes;
}

static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Keep some of the write's 512-byte sectors (on absolute boundaries). */
static int tear(struct qcowkit_io *io, const struct pending *p, uint64_t *state)
{
    size_t done = 0;
    int err = 0;

    while (err == 0 && done < p->len) {
        uint64_t at = p->offset + done;
        size_t n = SECTOR - (size_t)(at % SECTOR);
        if (n > p->len - done)
            n = p->len - done;
        if (next_random(state) & 1)
            err = qcowkit_io_pwrite(io, p->data + done, n, at);
        done += n;
    }
    return err;
}

static int replay(struct crash_backend *c, struct qcowkit_io *out,
                  enum crash_mode mode, uint64_t seed)
{
    uint64_t state = seed;
    int err = 0;

    for (size_t i = 0; err == 0 && i < c->logged; i++) {
        const struct pending *p = &c->log[i];
        uint64_t pick = mode == CRASH_RANDOM     ? next_random(&state) % 3
                        : mode == CRASH_KEEP_ALL ? 0
                                                 : 1;
        if (pick == 0)
            err = apply(out, p);
        else if (pick == 2 && p->data)
            err = tear(out, p, &state);
    }
    return err;
}

int crash_backend_image(struct qcowkit_io *io, enum crash_mode mode,
                        uint64_t seed, struct qcowkit_io **after)
{
    struct crash_backend *c = as_crash(io);
    int err;

    *after = NULL;
    if (!c)
        return wrapper_fail(-EINVAL,
                            "crash_backend_image: not a crash backend");
    pthread_mutex_lock(&c->lock);
    err = copy_backend(c->durable, after);
    if (err == 0)
        err = replay(c, *after, mode, seed);
    pthread_mutex_unlock(&c->lock);
    if (err < 0) {
        qcowkit_io_close(*after);
        *after = NULL;
        return wrapper_fail(err,
                            "crash: cannot build the image after the crash");
    }
    return 0;
}
