/* server.h - the socket side of `qcowkit nbd`: listen, accept, serve. */
#ifndef QCOWKIT_NBD_SERVER_H
#define QCOWKIT_NBD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

struct nbd_server_opts {
    const char *socket_path;  /* a unix socket, or NULL for TCP */
    const char *bind_addr;    /* TCP address (default 0.0.0.0) */
    const char *port;         /* TCP port (default 10809) */
    const char *pid_file;     /* written once listening; NULL: none */
    unsigned shared;          /* clients at once; 0: no limit */
    bool persistent;          /* keep serving after the last client */
    bool verbose;             /* say why clients were dropped */
    unsigned handshake_limit; /* seconds for the whole handshake; 0: none */
    uint64_t max_memory;      /* bytes of requests in flight, all clients */
};

/*
 * Threads: one event thread, NBD_POOL_WORKERS workers shared by every
 * connection, and one thread per connection in the handshake, at most
 * NBD_MAX_HANDSHAKES at once.
 */
#define NBD_POOL_WORKERS   16u
#define NBD_MAX_HANDSHAKES 16u
/* What one connection may hold in flight, within the total max_memory. */
#define NBD_INFLIGHT_REQS  64u
#define NBD_INFLIGHT_BYTES (UINT64_C(64) << 20)
/* Bytes counted per request beside its data: its job, its reply. */
#define NBD_REQUEST_OVERHEAD 1024u
#define NBD_HANDSHAKE_SECS   10u
#define NBD_SEND_TIMEOUT     60
/* A write's data must keep coming: it holds budget others may wait for. */
#define NBD_RECV_TIMEOUT 30
/*
 * While other clients wait for budget, a write's data must also arrive at
 * this rate on the whole (after NBD_RECV_TIMEOUT of grace): one byte now
 * and then would otherwise hold the budget for weeks.
 */
#define NBD_MIN_WRITE_RATE (UINT32_C(1) << 20) /* bytes per second */
#define NBD_MAX_MEMORY     (UINT64_C(256) << 20)
#define NBD_MIN_MEMORY     (UINT64_C(1) << 20)

/*
 * Serve exp until a signal (SIGINT, SIGTERM, SIGHUP) or, without
 * persistent, until the last client has gone.  Prints its own errors.
 * Returns 0, or -1 if it could not start.
 */
int nbd_serve(const struct nbd_export *exp, const struct nbd_server_opts *o);

#endif /* QCOWKIT_NBD_SERVER_H */
