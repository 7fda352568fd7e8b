/*
 * conn.h - the inside of `qcowkit nbd`: the server, its connections, the
 * shared worker pool and the memory budget.
 *
 * One event thread (server.c) owns the epoll set, accepts, reads every
 * request without blocking (conn.c) and alone frees connections.  A
 * handshake runs in a thread of its own (handshake.c) under a deadline,
 * then hands the connection to the event thread.  Workers (pool.c) run
 * requests for all connections and queue the replies; a reply that does
 * not fit in the socket at once is written later by the event thread, so
 * no thread ever waits on a client.
 *
 * Locks, taken in this order: nbd_conn.send_lock, srv_conn.lock,
 * server.lock, server.mem_lock; pool.lock alone.
 */
#ifndef QCOWKIT_NBD_CONN_H
#define QCOWKIT_NBD_CONN_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "protocol.h"
#include "server.h"

/* A reply, or the rest of one, that the socket did not take yet. */
struct nbd_out {
    struct nbd_out *next;
    uint8_t *head; /* a copy of the small parts (headers, messages) */
    size_t head_len;
    uint8_t *body; /* a taken buffer (a read's data), or NULL */
    size_t body_len;
    size_t done;   /* bytes of head, then body, already sent */
    uint64_t cost; /* budget returned once this is sent */
    unsigned reqs; /* requests retired once this is sent */
};

struct nbd_job {
    struct nbd_job *next;
    struct srv_conn *conn;
    struct nbd_request req;
    uint64_t cost;
};

enum conn_phase { PHASE_HANDSHAKE, PHASE_SERVING };

struct server;

struct srv_conn {
    struct srv_conn *next, *prev; /* server.conns (event thread) */
    struct srv_conn *attn_next;   /* server.attn (under server.lock) */
    struct srv_conn *pause_next;  /* server.paused (event thread) */
    struct server *srv;
    int fd;
    struct nbd_conn nc;
    enum conn_phase phase; /* event thread */
    pthread_t hs_thread;
    int hs_result;     /* NBD_HS_GO, ... (valid once hs_done) */
    bool hs_timed_out; /* the deadline passed */

    /* Input, event thread only. */
    uint8_t hdr[NBD_REQUEST_LEN];
    size_t hdr_got;
    bool have_req; /* req holds a parsed header */
    bool reserved; /* ... and its cost is reserved */
    struct nbd_request req;
    uint64_t req_cost;
    uint32_t payload_got;
    time_t last_input;    /* when the reserved payload last grew */
    time_t payload_start; /* when its cost was reserved */

    pthread_mutex_t lock;
    /* Under lock. */
    bool in_attn;   /* also under server.lock */
    bool hs_done;   /* the handshake thread has finished */
    bool paused;    /* waiting for budget: not reading */
    bool read_done; /* no more requests: NBD_CMD_DISC, EOF, stop */
    bool dead;      /* a send failed: drop queued work */
    unsigned jobs;  /* queued or running in the pool */
    unsigned inflight_reqs;
    uint64_t inflight_bytes;
    struct nbd_out *out_head, *out_tail;
    time_t last_progress; /* monotonic seconds of the last send */
    uint32_t events;      /* the epoll mask set */
};

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct nbd_job *head, *tail;
    bool stop;
    unsigned n_threads;
    pthread_t threads[NBD_POOL_WORKERS];
};

/* Freed read and write buffers kept for reuse (bufcache.c). */
#define NBD_BUF_CLASSES 9 /* 128 KiB, 256 KiB, ... NBD_MAX_REQUEST */
struct cached_buf;
struct bufcache {
    struct cached_buf *free[NBD_BUF_CLASSES];
    uint64_t bytes;      /* kept: counted in the budget beside mem_used */
    unsigned idle_scans; /* 1 s scans in a row with nothing in flight */
};

struct server {
    const struct nbd_export *exp;
    const struct nbd_server_opts *opts;
    int epfd, wakefd;
    struct pool pool;
    struct srv_conn *conns; /* event thread */
    struct srv_conn *paused, **paused_tail;
    unsigned n_conns, n_handshakes;

    pthread_mutex_t lock;
    struct srv_conn *attn; /* connections the event thread must look at */

    pthread_mutex_t mem_lock;
    uint64_t mem_used;    /* reserved over all connections */
    unsigned n_paused;    /* connections waiting for budget */
    struct bufcache bufs; /* under mem_lock */
};

time_t mono_secs(void);
void server_wake(struct server *srv);
/* Ask the event thread to look at c (call with c->lock held). */
void conn_attention(struct srv_conn *c);

/* conn.c */
void conn_write(struct srv_conn *c);
void conn_start_serving(struct srv_conn *c);
void conn_end_input(struct srv_conn *c);
/* Give back a finished job's budget (locks c). */
void conn_job_done(struct srv_conn *c, uint64_t cost);
void conn_check_timeout(struct srv_conn *c, time_t now);
bool conn_closable(struct srv_conn *c);
/*
 * Reserve cost for c's next request, whose data buffer (if any) will be
 * buf_len bytes, dropping kept buffers if need be: 1 done; else c is paused
 * (not read until retried), 0 over its own share, -1 over the total.
 */
int conn_reserve(struct srv_conn *c, uint64_t cost, size_t buf_len);
void conn_unreserve(struct srv_conn *c, uint64_t cost);

/* input.c: read c's requests while it has them and budget; returns
 * 0, or 1 / 2 when c got paused over its own share / over the total. */
int conn_read(struct srv_conn *c);
/* Drop the input of c if its reserved payload stalled NBD_RECV_TIMEOUT,
 * or, while others wait for budget, came slower than NBD_MIN_WRITE_RATE. */
void conn_check_stall(struct srv_conn *c, time_t now);

/* pool.c */
int pool_start(struct pool *p);
void pool_push(struct pool *p, struct nbd_job *j);
void pool_stop(struct pool *p);

/* bufcache.c (each takes mem_lock, unless said otherwise) */
/* What a buffer of len bytes takes: its size class, charged in full. */
size_t bufcache_size(size_t len);
void *bufcache_get(struct server *srv, size_t len);
/* Give back buf (or NULL) of len bytes, before its budget is retired. */
void bufcache_put(struct server *srv, void *buf, size_t len);
/*
 * mem_lock held: unlink kept buffers until cost fits in the budget
 * (those of want_len's class last); none if it cannot fit anyway.
 * Free what it returns with bufcache_release, after unlocking.
 */
struct cached_buf *bufcache_make_room(struct server *srv, uint64_t cost,
                                      size_t want_len);
void bufcache_release(struct cached_buf *list);
/* Once a second: drop all after a few seconds with nothing in flight. */
void bufcache_trim_idle(struct server *srv);
void bufcache_destroy(struct server *srv);

/* listen.c: a listening socket (-1 after an error message). */
int listen_unix(const char *path);
int listen_tcp(const char *addr, const char *port);
int write_pid_file(const char *path);

/* handshake.c */
int handshake_start(struct srv_conn *c);

#endif /* QCOWKIT_NBD_CONN_H */
