/*
 * protocol.h - the NBD protocol of `qcowkit nbd`, apart from any socket.
 *
 * A connection reads and writes through a struct nbd_transport (two
 * functions over an opaque pointer), so that the same code serves a
 * socket (server.c) and an in-memory byte stream (fuzz/fuzz-nbd.c).
 *
 *   nbd_handshake()        fixed newstyle negotiation, up to transmission
 *   nbd_recv_header()      one request header, checked: what it costs
 *   nbd_recv_payload()     its payload (a write's data), or skip it
 *   nbd_handle_request()   run it against the image and send the reply
 *
 * nbd_handle_request() may run in several threads at once for one
 * connection: replies are sent whole under the connection's send lock.
 * Everything read from the client is bounded: option data to
 * NBD_MAX_OPTION_LEN, request payloads to the export's max_request (a
 * larger write is read and thrown away, then failed with EINVAL), block
 * status replies to NBD_MAX_EXTENTS descriptors.
 */
#ifndef QCOWKIT_NBD_PROTOCOL_H
#define QCOWKIT_NBD_PROTOCOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "qcowkit.h"

/* Magic numbers and values of the protocol (doc/proto.md of nbd). */
#define NBD_MAGIC         UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_IHAVEOPT      UINT64_C(0x49484156454f5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC     UINT64_C(0x3e889045565a9)
#define NBD_REQUEST_MAGIC 0x25609513u
#define NBD_SIMPLE_MAGIC  0x67446698u
#define NBD_STRUCT_MAGIC  0x668e33efu

#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

#define NBD_FLAG_HAS_FLAGS         (1u << 0)
#define NBD_FLAG_READ_ONLY         (1u << 1)
#define NBD_FLAG_SEND_FLUSH        (1u << 2)
#define NBD_FLAG_SEND_FUA          (1u << 3)
#define NBD_FLAG_ROTATIONAL        (1u << 4)
#define NBD_FLAG_SEND_TRIM         (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF           (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1u << 8)

#define NBD_OPT_EXPORT_NAME       1u
#define NBD_OPT_ABORT             2u
#define NBD_OPT_LIST              3u
#define NBD_OPT_PEEK_EXPORT       4u
#define NBD_OPT_STARTTLS          5u
#define NBD_OPT_INFO              6u
#define NBD_OPT_GO                7u
#define NBD_OPT_STRUCTURED_REPLY  8u
#define NBD_OPT_LIST_META_CONTEXT 9u
#define NBD_OPT_SET_META_CONTEXT  10u
#define NBD_OPT_EXTENDED_HEADERS  11u

#define NBD_REP_ACK           1u
#define NBD_REP_SERVER        2u
#define NBD_REP_INFO          3u
#define NBD_REP_META_CONTEXT  4u
#define NBD_REP_ERR_UNSUP     (0x80000000u + 1)
#define NBD_REP_ERR_POLICY    (0x80000000u + 2)
#define NBD_REP_ERR_INVALID   (0x80000000u + 3)
#define NBD_REP_ERR_PLATFORM  (0x80000000u + 4)
#define NBD_REP_ERR_TLS_REQD  (0x80000000u + 5)
#define NBD_REP_ERR_UNKNOWN   (0x80000000u + 6)
#define NBD_REP_ERR_SHUTDOWN  (0x80000000u + 7)
#define NBD_REP_ERR_BLOCK_REQ (0x80000000u + 8)
#define NBD_REP_ERR_TOO_BIG   (0x80000000u + 9)

#define NBD_INFO_EXPORT      0u
#define NBD_INFO_NAME        1u
#define NBD_INFO_DESCRIPTION 2u
#define NBD_INFO_BLOCK_SIZE  3u

#define NBD_CMD_READ         0u
#define NBD_CMD_WRITE        1u
#define NBD_CMD_DISC         2u
#define NBD_CMD_FLUSH        3u
#define NBD_CMD_TRIM         4u
#define NBD_CMD_CACHE        5u
#define NBD_CMD_WRITE_ZEROES 6u
#define NBD_CMD_BLOCK_STATUS 7u

#define NBD_CMD_FLAG_FUA       (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE   (1u << 1)
#define NBD_CMD_FLAG_DF        (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE   (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO (1u << 4)

#define NBD_REPLY_FLAG_DONE         (1u << 0)
#define NBD_REPLY_TYPE_NONE         0u
#define NBD_REPLY_TYPE_OFFSET_DATA  1u
#define NBD_REPLY_TYPE_OFFSET_HOLE  2u
#define NBD_REPLY_TYPE_BLOCK_STATUS 5u
#define NBD_REPLY_TYPE_ERROR        ((1u << 15) + 1)

#define NBD_STATE_HOLE (1u << 0)
#define NBD_STATE_ZERO (1u << 1)

#define NBD_EPERM     1u
#define NBD_EIO       5u
#define NBD_ENOMEM    12u
#define NBD_EINVAL    22u
#define NBD_ENOSPC    28u
#define NBD_EOVERFLOW 75u
#define NBD_ENOTSUP   95u
#define NBD_ESHUTDOWN 108u

/* The one metadata context, and its id in transmission. */
#define NBD_META_BASE_ALLOCATION "base:allocation"
#define NBD_META_ID_BASE_ALLOC   1u

/* Limits. */
#define NBD_MAX_REQUEST    (UINT32_C(32) << 20) /* read/write payload */
#define NBD_MAX_OPTION_LEN (UINT32_C(64) << 10) /* option data kept */
#define NBD_MAX_SKIP_LEN   (UINT32_C(16) << 20) /* option data skipped */
#define NBD_MAX_OPTIONS    4096u                /* options per session */
#define NBD_MAX_EXTENTS    2048u /* descriptors per block status reply */
#define NBD_MAX_STRING     4096u /* names, queries */

/* What is exported: one image, shared by every connection. */
struct nbd_export {
    const char *name;        /* the export name ("" by default) */
    const char *description; /* NULL or "" for none */
    struct qcowkit_image *img;
    uint64_t size;
    bool read_only;
    bool multi_conn; /* advertise NBD_FLAG_CAN_MULTI_CONN */
    uint32_t min_block, preferred_block, max_request;
};

/*
 * Fill exp for img: its size and block sizes.  Returns 0
 * or a negative errno.
 */
int nbd_export_init(struct nbd_export *exp, struct qcowkit_image *img,
                    const char *name, const char *description, bool read_only);

/* How a connection talks to its client.  Both return 0, or -1 to hang up. */
struct nbd_transport {
    /* Read exactly len bytes (-1 on EOF, error or timeout). */
    int (*recv)(void *opaque, void *buf, size_t len);
    /* Write all of iov. */
    int (*send)(void *opaque, const struct iovec *iov, int iovcnt);
    void *opaque;
};

struct nbd_conn {
    const struct nbd_export *exp;
    struct nbd_transport t;
    /*
     * Optional (NULL after nbd_conn_init): as t.send, but the last element
     * of iov is all of buf (from malloc), which it now owns and frees,
     * sent or not.  Lets a queued reply keep a read's data, uncopied.
     */
    int (*send_take)(void *opaque, const struct iovec *iov, int iovcnt,
                     void *buf);
    /*
     * Optional (NULL: malloc and free): where the data buffers of reads
     * and writes come from and go back to, given their length.
     */
    void *(*buf_get)(void *opaque, size_t len);
    void (*buf_put)(void *opaque, void *buf, size_t len);
    bool fixed;      /* the client set NBD_FLAG_C_FIXED_NEWSTYLE */
    bool no_zeroes;  /* ... and NBD_FLAG_C_NO_ZEROES */
    bool structured; /* NBD_OPT_STRUCTURED_REPLY acknowledged */
    bool base_alloc; /* base:allocation selected */
    uint16_t tx_flags;
    unsigned n_options;
    pthread_mutex_t send_lock;
    bool send_failed; /* under send_lock */
    /* Why the connection was dropped (protocol violations), or "". */
    char why[160];
};

void nbd_conn_init(struct nbd_conn *c, const struct nbd_export *exp,
                   const struct nbd_transport *t);
void nbd_conn_destroy(struct nbd_conn *c);

#define NBD_HS_GO   1 /* transmission phase entered */
#define NBD_HS_QUIT 2 /* the client ended the session (NBD_OPT_ABORT) */
/* Returns NBD_HS_GO, NBD_HS_QUIT, or -1 to hang up (c->why says why). */
int nbd_handshake(struct nbd_conn *c);

struct nbd_request {
    uint16_t flags, type;
    uint64_t cookie, offset;
    uint32_t len;
    uint32_t error;   /* nonzero: answer this NBD error, do nothing */
    const char *why;  /* with error: the message of a structured reply */
    uint32_t payload; /* bytes of payload that follow the header */
    size_t cost;      /* bytes this request will hold while in flight */
    uint8_t *data;    /* a write's payload (after nbd_recv_payload) */
};

/*
 * Read and check one request header.  Returns 1 for a request (then call
 * nbd_recv_payload), 0 for NBD_CMD_DISC, -1 to hang up (EOF, bad magic).
 */
int nbd_recv_header(struct nbd_conn *c, struct nbd_request *r);
/* The same, for the NBD_REQUEST_LEN bytes of a header read elsewhere. */
#define NBD_REQUEST_LEN 28
int nbd_parse_header(struct nbd_conn *c, const uint8_t *h,
                     struct nbd_request *r);
/* Read r's payload into r->data, or skip it if r fails.  0 or -1. */
int nbd_recv_payload(struct nbd_conn *c, struct nbd_request *r);
/* Run r, send its reply and free r->data.  0, or -1 if sending failed. */
int nbd_handle_request(struct nbd_conn *c, struct nbd_request *r);
void nbd_request_free(struct nbd_request *r);

/* The NBD error value for a negative errno of the library. */
uint32_t nbd_errno(int err);

#endif /* QCOWKIT_NBD_PROTOCOL_H */
