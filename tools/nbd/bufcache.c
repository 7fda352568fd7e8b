/*
 * bufcache.c - the data buffers of reads and writes, kept for reuse.
 *
 * Large buffers are mapped by malloc (M_MMAP_THRESHOLD, server.c) so that
 * freeing one gives its memory back; doing that for every request costs
 * an mmap, a munmap and a page fault per 4 KiB.  Freed buffers of 128 KiB
 * and more are kept instead, in free lists by power-of-two size class.
 * A kept buffer is memory the server holds, so its bytes count in the
 * --max-memory budget beside the reservations of requests in flight: a
 * reservation that finds no room drops kept buffers first (other classes
 * first), and only then pauses its connection.  A request is charged the
 * size of its class (bufcache_size), so the buffer it takes is covered.
 * Everything is dropped once the server has had no request in flight for
 * a few seconds.
 *
 * A request's buffer goes back here before its budget is returned, so
 * the live and kept buffers never exceed what the budget accounts for.
 */
#include <stdlib.h>

#include "conn.h"

#define SMALLEST_SHIFT 17 /* 128 KiB: smaller ones stay in malloc's heap */
#define IDLE_SCANS     3  /* seconds with nothing in flight before a trim */

struct cached_buf {
    struct cached_buf *next;
};

/* The class of a len-byte buffer, or -1 for one left to malloc. */
static int class_of(size_t len)
{
    int k = 0;

    if (len < ((size_t)1 << SMALLEST_SHIFT) || len > NBD_MAX_REQUEST)
        return -1;
    while (((size_t)1 << (SMALLEST_SHIFT + k)) < len)
        k++;
    return k;
}

static size_t class_size(int k)
{
    return (size_t)1 << (SMALLEST_SHIFT + k);
}

/*
 * The kernel copies into and out of these buffers (pread, recv); its
 * copies run about 3 times slower into a destination that is not aligned
 * to a cache line, and a mapped malloc block starts 16 bytes into a page.
 */
static void *aligned_buffer(size_t len)
{
    size_t align = len >= 4096 ? 4096 : 64;

    return aligned_alloc(align, (len + align - 1) / align * align);
}

size_t bufcache_size(size_t len)
{
    int k = class_of(len);

    return k < 0 ? len : class_size(k);
}

void *bufcache_get(struct server *srv, size_t len)
{
    struct bufcache *bc = &srv->bufs;
    struct cached_buf *b = NULL;
    int k = class_of(len);

    if (k < 0)
        return aligned_buffer(len ? len : 1);
    pthread_mutex_lock(&srv->mem_lock);
    b = bc->free[k];
    if (b) {
        bc->free[k] = b->next;
        bc->bytes -= class_size(k);
    }
    pthread_mutex_unlock(&srv->mem_lock);
    return b ? (void *)b : aligned_buffer(class_size(k));
}

void bufcache_put(struct server *srv, void *buf, size_t len)
{
    struct bufcache *bc = &srv->bufs;
    struct cached_buf *b = buf;
    int k = class_of(len);

    if (k < 0 || !buf) {
        free(buf);
        return;
    }
    pthread_mutex_lock(&srv->mem_lock);
    b->next = bc->free[k];
    bc->free[k] = b;
    bc->bytes += class_size(k);
    pthread_mutex_unlock(&srv->mem_lock);
}

/* Unlink one kept buffer of class k onto *out (mem_lock held). */
static void drop_one(struct bufcache *bc, int k, struct cached_buf **out)
{
    struct cached_buf *b = bc->free[k];

    bc->free[k] = b->next;
    bc->bytes -= class_size(k);
    b->next = *out;
    *out = b;
}

struct cached_buf *bufcache_make_room(struct server *srv, uint64_t cost,
                                      size_t want_len)
{
    struct bufcache *bc = &srv->bufs;
    uint64_t max = srv->opts->max_memory;
    struct cached_buf *dropped = NULL;
    int want = class_of(want_len);

    if (srv->mem_used && srv->mem_used + cost > max)
        return NULL; /* kept buffers or not, it must wait */
    for (int k = NBD_BUF_CLASSES - 1; k >= 0; k--)
        while (k != want && bc->free[k] &&
               srv->mem_used + bc->bytes + cost > max)
            drop_one(bc, k, &dropped);
    while (want >= 0 && bc->free[want] &&
           srv->mem_used + bc->bytes + cost > max)
        drop_one(bc, want, &dropped);
    return dropped;
}

void bufcache_release(struct cached_buf *list)
{
    while (list) {
        struct cached_buf *next = list->next;

        free(list);
        list = next;
    }
}

/* Everything kept, unlinked (mem_lock held). */
static struct cached_buf *take_all(struct bufcache *bc)
{
    struct cached_buf *all = NULL;

    for (int k = 0; k < NBD_BUF_CLASSES; k++)
        while (bc->free[k])
            drop_one(bc, k, &all);
    return all;
}

void bufcache_trim_idle(struct server *srv)
{
    struct cached_buf *all = NULL;

    pthread_mutex_lock(&srv->mem_lock);
    if (srv->mem_used || !srv->bufs.bytes)
        srv->bufs.idle_scans = 0;
    else if (++srv->bufs.idle_scans >= IDLE_SCANS)
        all = take_all(&srv->bufs);
    pthread_mutex_unlock(&srv->mem_lock);
    bufcache_release(all);
}

void bufcache_destroy(struct server *srv)
{
    bufcache_release(take_all(&srv->bufs));
}
