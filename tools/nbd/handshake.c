/*
 * handshake.c - one connection's NBD handshake, in a thread of its own,
 * under one deadline for the whole of it (--handshake-limit), so that a
 * client trickling a byte at a time cannot keep its slot.  The event
 * thread caps how many run at once (NBD_MAX_HANDSHAKES) and takes the
 * connection back when the thread is done.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"

struct deadline_io {
    struct srv_conn *conn;
    struct timespec end; /* tv_sec 0: no deadline */
};

/* Wait for fd to be ready for events; -1 once the deadline has passed. */
static int wait_ready(struct deadline_io *d, short events)
{
    struct pollfd p = {d->conn->fd, events, 0};
    int ms = -1, n;

    if (d->end.tv_sec) {
        struct timespec now;
        int64_t left;

        clock_gettime(CLOCK_MONOTONIC, &now);
        left = (int64_t)(d->end.tv_sec - now.tv_sec) * 1000 +
               (d->end.tv_nsec - now.tv_nsec) / 1000000;
        if (left <= 0) {
            d->conn->hs_timed_out = true;
            return -1;
        }
        ms = left > 1000000 ? 1000000 : (int)left;
    }
    n = poll(&p, 1, ms);
    if (n < 0 && errno != EINTR)
        return -1;
    return 0; /* ready, interrupted or timed out: the caller tries again */
}

static int hs_recv(void *opaque, void *buf, size_t len)
{
    struct deadline_io *d = opaque;
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = recv(d->conn->fd, p, len, MSG_DONTWAIT);

        if (n < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_ready(d, POLLIN) < 0)
                return -1;
            continue;
        }
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int hs_send(void *opaque, const struct iovec *iov_in, int iovcnt)
{
    struct deadline_io *d = opaque;
    struct iovec iov[8];
    int i, n = 0;

    for (i = 0; i < iovcnt && n < 8; i++)
        if (iov_in[i].iov_len)
            iov[n++] = iov_in[i];
    i = 0;
    while (i < n) {
        struct msghdr msg;
        ssize_t sent;

        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov + i;
        msg.msg_iovlen = (size_t)(n - i);
        sent = sendmsg(d->conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (wait_ready(d, POLLOUT) < 0)
                return -1;
            continue;
        }
        if (sent <= 0)
            return -1;
        while (i < n && (size_t)sent >= iov[i].iov_len)
            sent -= (ssize_t)iov[i++].iov_len;
        if (i < n) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + sent;
            iov[i].iov_len -= (size_t)sent;
        }
    }
    return 0;
}

static void *handshake_main(void *arg)
{
    struct srv_conn *c = arg;
    unsigned limit = c->srv->opts->handshake_limit;
    struct deadline_io d = {c, {0, 0}};
    struct nbd_transport t = {hs_recv, hs_send, &d};
    int one = 1, rc;

    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (limit) {
        clock_gettime(CLOCK_MONOTONIC, &d.end);
        d.end.tv_sec += limit;
    }
    c->nc.t = t;
    rc = nbd_handshake(&c->nc);
    pthread_mutex_lock(&c->lock);
    c->hs_result = rc;
    c->hs_done = true;
    conn_attention(c);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

int handshake_start(struct srv_conn *c)
{
    return pthread_create(&c->hs_thread, NULL, handshake_main, c) == 0 ? 0 : -1;
}
