/*
 * conn.c - one connection of `qcowkit nbd` in transmission: its requests
 * read without blocking by the event thread, within the memory budget,
 * and its replies, sent at once when the socket takes them, else queued
 * whole (never interleaved) and written by the event thread later.
 *
 * A request holds its share of the budget from its header until its reply
 * has left.  A connection that cannot get its share stops being read
 * (paused) until replies of anybody have gone: back-pressure on the
 * client, never an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

/* Make the epoll registration match what c waits for (c->lock held). */
static void rearm(struct srv_conn *c)
{
    struct epoll_event ev;
    uint32_t want = 0;
    int op;

    if (c->phase == PHASE_SERVING && !c->dead) {
        if (!c->read_done && !c->paused)
            want |= EPOLLIN;
        if (c->out_head)
            want |= EPOLLOUT;
    }
    if (want == c->events)
        return;
    op = !want ? EPOLL_CTL_DEL : c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    memset(&ev, 0, sizeof ev);
    ev.events = want;
    ev.data.ptr = c;
    epoll_ctl(c->srv->epfd, op, c->fd, &ev);
    c->events = want;
}

/* Give back what requests held (c->lock held). */
static void retire(struct srv_conn *c, uint64_t cost, unsigned reqs)
{
    struct server *srv = c->srv;
    bool wake;

    if (!reqs && !cost)
        return;
    c->inflight_reqs -= reqs;
    c->inflight_bytes -= cost;
    pthread_mutex_lock(&srv->mem_lock);
    srv->mem_used -= cost;
    wake = srv->n_paused > 0;
    pthread_mutex_unlock(&srv->mem_lock);
    if (wake)
        server_wake(srv);
}

/* Free o, its buffer back to the cache: before retiring its cost. */
static void out_free(struct srv_conn *c, struct nbd_out *o)
{
    free(o->head);
    bufcache_put(c->srv, o->body, o->body_len);
    free(o);
}

/* o has left the queue: free it, then give back its budget. */
static void out_free_retire(struct srv_conn *c, struct nbd_out *o)
{
    uint64_t cost = o->cost;
    unsigned reqs = o->reqs;

    out_free(c, o);
    retire(c, cost, reqs);
}

/* A send failed or timed out: drop every queued reply (c->lock held). */
static void mark_dead(struct srv_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    while (c->out_head) {
        struct nbd_out *o = c->out_head;

        c->out_head = o->next;
        out_free_retire(c, o);
    }
    c->out_tail = NULL;
    if (c->paused) {
        c->paused = false;
        pthread_mutex_lock(&c->srv->mem_lock);
        c->srv->n_paused--;
        pthread_mutex_unlock(&c->srv->mem_lock);
    }
    shutdown(c->fd, SHUT_RDWR);
    rearm(c);
}

/* Send what the socket takes of o: 1 all sent, 0 it is full, -1 error. */
static int out_send(int fd, struct nbd_out *o)
{
    while (o->done < o->head_len + o->body_len) {
        struct iovec iov[2];
        struct msghdr msg;
        ssize_t sent;
        int n = 0;

        if (o->done < o->head_len) {
            iov[n++] = (struct iovec){o->head + o->done, o->head_len - o->done};
            if (o->body_len)
                iov[n++] = (struct iovec){o->body, o->body_len};
        } else {
            iov[n++] = (struct iovec){o->body + (o->done - o->head_len),
                                      o->head_len + o->body_len - o->done};
        }
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)n;
        sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (sent <= 0)
            return -1;
        o->done += (size_t)sent;
    }
    return 1;
}

/* Send queued replies until the socket is full (c->lock held). */
static void flush_out(struct srv_conn *c)
{
    while (c->out_head && !c->dead) {
        struct nbd_out *o = c->out_head;
        size_t before = o->done;
        int rc = out_send(c->fd, o);

        if (o->done != before)
            c->last_progress = mono_secs();
        if (rc < 0) {
            snprintf(c->nc.why, sizeof c->nc.why, "cannot send a reply: %s",
                     strerror(errno));
            mark_dead(c);
            return;
        }
        if (rc == 0)
            return;
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = NULL;
        out_free_retire(c, o);
    }
}

/* A reply as one queue entry: iov copied, but a taken buffer kept. */
static struct nbd_out *out_new(const struct iovec *iov, int n, void *take)
{
    struct nbd_out *o = calloc(1, sizeof *o);
    int copied = take ? n - 1 : n;
    size_t len = 0;

    if (!o)
        return NULL;
    for (int i = 0; i < copied; i++)
        len += iov[i].iov_len;
    o->head = malloc(len ? len : 1);
    if (!o->head) {
        free(o);
        return NULL;
    }
    for (int i = 0; i < copied; i++) {
        memcpy(o->head + o->head_len, iov[i].iov_base, iov[i].iov_len);
        o->head_len += iov[i].iov_len;
    }
    if (take) {
        o->body = take;
        o->body_len = iov[n - 1].iov_len;
    }
    return o;
}

/* The transport of transmission: queue the reply, send what fits now. */
static int queue_reply(struct srv_conn *c, const struct iovec *iov, int n,
                       void *take)
{
    struct nbd_out *o = out_new(iov, n, take);
    int rc;

    pthread_mutex_lock(&c->lock);
    if (!o) {
        bufcache_put(c->srv, take, take ? iov[n - 1].iov_len : 0);
        snprintf(c->nc.why, sizeof c->nc.why, "out of memory for a reply");
        mark_dead(c);
    }
    if (c->dead) {
        pthread_mutex_unlock(&c->lock);
        if (o)
            out_free(c, o);
        return -1;
    }
    if (c->out_tail) {
        c->out_tail->next = o;
    } else {
        c->out_head = o;
        c->last_progress = mono_secs();
    }
    c->out_tail = o;
    if (c->out_head == o)
        flush_out(c);
    rc = c->dead ? -1 : 0;
    rearm(c);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int conn_send(void *opaque, const struct iovec *iov, int iovcnt)
{
    return queue_reply(opaque, iov, iovcnt, NULL);
}

static int conn_send_take(void *opaque, const struct iovec *iov, int iovcnt,
                          void *buf)
{
    return queue_reply(opaque, iov, iovcnt, buf);
}

static void *conn_buf_get(void *opaque, size_t len)
{
    struct srv_conn *c = opaque;

    return bufcache_get(c->srv, len);
}

static void conn_buf_put(void *opaque, void *buf, size_t len)
{
    struct srv_conn *c = opaque;

    bufcache_put(c->srv, buf, len);
}

void conn_start_serving(struct srv_conn *c)
{
    struct nbd_transport t = {NULL, conn_send, c};

    c->nc.t = t;
    c->nc.send_take = conn_send_take;
    c->nc.buf_get = conn_buf_get;
    c->nc.buf_put = conn_buf_put;
    c->phase = PHASE_SERVING;
    pthread_mutex_lock(&c->lock);
    rearm(c);
    pthread_mutex_unlock(&c->lock);
}

void conn_write(struct srv_conn *c)
{
    pthread_mutex_lock(&c->lock);
    flush_out(c);
    rearm(c);
    pthread_mutex_unlock(&c->lock);
}

void conn_job_done(struct srv_conn *c, uint64_t cost)
{
    pthread_mutex_lock(&c->lock);
    /* The reply is out, or queued no later than the last entry. */
    if (c->dead || !c->out_tail) {
        retire(c, cost, 1);
    } else {
        c->out_tail->cost += cost;
        c->out_tail->reqs++;
    }
    c->jobs--;
    if (c->jobs == 0 && (c->dead || c->read_done))
        conn_attention(c);
    pthread_mutex_unlock(&c->lock);
}

int conn_reserve(struct srv_conn *c, uint64_t cost, size_t buf_len)
{
    struct server *srv = c->srv;
    struct cached_buf *dropped = NULL;
    int rc = 1;

    pthread_mutex_lock(&c->lock);
    pthread_mutex_lock(&srv->mem_lock);
    if (c->inflight_reqs >= NBD_INFLIGHT_REQS ||
        (c->inflight_reqs && c->inflight_bytes + cost > NBD_INFLIGHT_BYTES))
        rc = 0;
    else {
        dropped = bufcache_make_room(srv, cost, buf_len);
        if (srv->mem_used &&
            srv->mem_used + srv->bufs.bytes + cost > srv->opts->max_memory)
            rc = -1;
    }
    if (rc == 1) {
        srv->mem_used += cost;
        c->inflight_reqs++;
        c->inflight_bytes += cost;
    }
    /* Under mem_lock with the check, so that no release is missed. */
    if (rc < 1 && !c->paused)
        srv->n_paused++;
    else if (rc == 1 && c->paused)
        srv->n_paused--;
    pthread_mutex_unlock(&srv->mem_lock);
    c->paused = rc < 1;
    rearm(c);
    pthread_mutex_unlock(&c->lock);
    bufcache_release(dropped);
    return rc;
}

void conn_check_timeout(struct srv_conn *c, time_t now)
{
    pthread_mutex_lock(&c->lock);
    if (c->out_head && !c->dead &&
        now - c->last_progress > (time_t)NBD_SEND_TIMEOUT) {
        snprintf(c->nc.why, sizeof c->nc.why,
                 "the client read no reply for %d s", NBD_SEND_TIMEOUT);
        mark_dead(c);
    }
    pthread_mutex_unlock(&c->lock);
}

bool conn_closable(struct srv_conn *c)
{
    bool closable;

    if (c->phase != PHASE_SERVING)
        return false;
    pthread_mutex_lock(&c->lock);
    closable = c->jobs == 0 && (c->dead || (c->read_done && !c->out_head));
    pthread_mutex_unlock(&c->lock);
    return closable;
}

void conn_unreserve(struct srv_conn *c, uint64_t cost)
{
    pthread_mutex_lock(&c->lock);
    retire(c, cost, 1);
    pthread_mutex_unlock(&c->lock);
}

void conn_end_input(struct srv_conn *c)
{
    if (c->have_req) {
        bufcache_put(c->srv, c->req.data, c->req.payload);
        c->req.data = NULL;
        if (c->reserved)
            conn_unreserve(c, c->req_cost);
        c->have_req = false;
    }
    pthread_mutex_lock(&c->lock);
    c->read_done = true;
    if (c->paused) {
        c->paused = false;
        pthread_mutex_lock(&c->srv->mem_lock);
        c->srv->n_paused--;
        pthread_mutex_unlock(&c->srv->mem_lock);
    }
    rearm(c);
    pthread_mutex_unlock(&c->lock);
}
