/*
 * input.c - the event thread reads a connection's requests: header, then
 * budget, then payload, never blocking, so that one thread reads for all
 * clients and a slow or silent client costs nothing but its buffers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "conn.h"

/* Bytes read from one connection before the others get their turn. */
#define READ_TURN (UINT64_C(4) << 20)

/* What a request holds while in flight: its data, job and reply. */
static uint64_t request_cost(const struct nbd_request *r)
{
    /* A data buffer is charged its whole size class (bufcache.c). */
    uint64_t cost = bufcache_size(r->cost) + NBD_REQUEST_OVERHEAD;

    if (r->type == NBD_CMD_BLOCK_STATUS)
        cost += 24 + 8 * (uint64_t)NBD_MAX_EXTENTS;
    return cost;
}

static bool input_open(struct srv_conn *c)
{
    bool open;

    pthread_mutex_lock(&c->lock);
    open = !c->dead && !c->read_done;
    pthread_mutex_unlock(&c->lock);
    return open;
}

/* recv without waiting: >0 bytes, 0 nothing yet, -1 the client is gone. */
static ssize_t recv_some(struct srv_conn *c, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);

        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
}

static void give_up(struct srv_conn *c, const char *why)
{
    if (why && !c->nc.why[0])
        snprintf(c->nc.why, sizeof c->nc.why, "%s", why);
    conn_end_input(c);
}

/* Hand the complete request to the pool. */
static void dispatch(struct srv_conn *c)
{
    struct nbd_job *j = malloc(sizeof *j);

    if (!j) {
        give_up(c, "out of memory");
        return;
    }
    j->conn = c;
    j->req = c->req;
    j->cost = c->req_cost;
    c->have_req = false;
    pthread_mutex_lock(&c->lock);
    c->jobs++;
    pthread_mutex_unlock(&c->lock);
    pool_push(&c->srv->pool, j);
}

/* Read a header: 1 complete, 0 not yet, -1 input ended. */
static int read_header(struct srv_conn *c)
{
    ssize_t n = recv_some(c, c->hdr + c->hdr_got, NBD_REQUEST_LEN - c->hdr_got);
    int rc;

    if (n < 0) {
        give_up(c, "the client left without NBD_CMD_DISC");
        return -1;
    }
    c->hdr_got += (size_t)n;
    if (c->hdr_got < NBD_REQUEST_LEN)
        return 0;
    c->hdr_got = 0;
    rc = nbd_parse_header(&c->nc, c->hdr, &c->req);
    if (rc <= 0) { /* NBD_CMD_DISC, or garbage (nc.why says) */
        give_up(c, NULL);
        return -1;
    }
    c->have_req = true;
    c->reserved = false;
    c->payload_got = 0;
    c->req_cost = request_cost(&c->req);
    return 1;
}

/* Read (or skip, for a failed request) the payload: bytes read, or -1. */
static ssize_t read_payload(struct srv_conn *c)
{
    static uint8_t scratch[65536]; /* the event thread's alone */
    struct nbd_request *r = &c->req;
    size_t left = r->payload - c->payload_got;
    ssize_t n;

    if (r->data)
        n = recv_some(c, r->data + c->payload_got, left);
    else
        n = recv_some(c, scratch,
                      left < sizeof scratch ? left : sizeof scratch);
    if (n < 0) {
        give_up(c, "the client left in a write's data");
        return -1;
    }
    c->payload_got += (uint32_t)n;
    if (n > 0)
        c->last_input = mono_secs();
    return n;
}

/* Others wait for budget (read under mem_lock: workers release it). */
static bool others_waiting(struct server *srv)
{
    bool waiting;

    pthread_mutex_lock(&srv->mem_lock);
    waiting = srv->n_paused > 0;
    pthread_mutex_unlock(&srv->mem_lock);
    return waiting;
}

void conn_check_stall(struct srv_conn *c, time_t now)
{
    time_t allowed;

    if (!c->have_req || !c->reserved || c->payload_got >= c->req.payload)
        return;
    if (now - c->last_input > (time_t)NBD_RECV_TIMEOUT) {
        snprintf(c->nc.why, sizeof c->nc.why, "no data of a write for %d s",
                 NBD_RECV_TIMEOUT);
        conn_end_input(c);
        return;
    }
    allowed = NBD_RECV_TIMEOUT + c->req.payload / NBD_MIN_WRITE_RATE;
    if (now - c->payload_start > allowed && others_waiting(c->srv)) {
        snprintf(c->nc.why, sizeof c->nc.why,
                 "a write's data came too slowly (%u of %u bytes in %ld s) "
                 "while others waited for memory",
                 c->payload_got, c->req.payload,
                 (long)(now - c->payload_start));
        conn_end_input(c);
    }
}

int conn_read(struct srv_conn *c)
{
    uint64_t turn = 0;

    while (turn < READ_TURN && input_open(c)) {
        ssize_t n;

        if (!c->have_req) {
            int rc = read_header(c);

            if (rc <= 0)
                return 0;
            turn += NBD_REQUEST_LEN;
        }
        if (!c->reserved) {
            int rc = conn_reserve(c, c->req_cost, c->req.cost);

            if (rc < 1)
                return rc == 0 ? 1 : 2;
            c->reserved = true;
            c->last_input = c->payload_start = mono_secs();
            if (c->req.payload && !c->req.error) {
                c->req.data = bufcache_get(c->srv, c->req.payload);
                if (!c->req.data) {
                    c->req.error = NBD_ENOMEM;
                    c->req.why = "out of memory";
                }
            }
        }
        if (c->payload_got < c->req.payload) {
            n = read_payload(c);
            if (n <= 0)
                return 0;
            turn += (uint64_t)n;
            if (c->payload_got < c->req.payload)
                continue;
        }
        dispatch(c);
    }
    return 0;
}
