/* server.h - the socket side of `qcowkit nbd`: listen, accept, threads. */
#ifndef QCOWKIT_NBD_SERVER_H
#define QCOWKIT_NBD_SERVER_H

#include <stdbool.h>

#include "protocol.h"

struct nbd_server_opts {
    const char *socket_path; /* a unix socket, or NULL for TCP */
    const char *bind_addr;   /* TCP address (default 0.0.0.0) */
    const char *port;        /* TCP port (default 10809) */
    const char *pid_file;    /* written once listening; NULL: none */
    unsigned shared;         /* clients at once; 0: no limit */
    bool persistent;         /* keep serving after the last client */
    bool verbose;            /* say why clients were dropped */
};

/* Worker threads per connection, and what one connection may hold. */
#define NBD_WORKERS        8u
#define NBD_INFLIGHT_REQS  64u
#define NBD_INFLIGHT_BYTES (UINT64_C(64) << 20)
#define NBD_HANDSHAKE_SECS 10
#define NBD_SEND_TIMEOUT   60

/*
 * Serve exp until a signal (SIGINT, SIGTERM, SIGHUP) or, without
 * persistent, until the last client has gone.  Prints its own errors.
 * Returns 0, or -1 if it could not start.
 */
int nbd_serve(const struct nbd_export *exp, const struct nbd_server_opts *o);

#endif /* QCOWKIT_NBD_SERVER_H */
