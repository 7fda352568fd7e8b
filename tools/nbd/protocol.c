/* protocol.c - the NBD protocol of `qcowkit nbd` (see protocol.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

/* ------------------------------------------------------------ byte order */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* ---------------------------------------------------------------- export */

int nbd_export_init(struct nbd_export *exp, struct qcowkit_image *img,
                    const char *name, const char *description, bool read_only)
{
    struct qcowkit_info info;
    int err;

    memset(exp, 0, sizeof *exp);
    exp->name = name ? name : "";
    exp->description = description;
    exp->img = img;
    exp->read_only = read_only;
    exp->min_block = 1;
    exp->preferred_block = 4096;
    exp->max_request = NBD_MAX_REQUEST;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    err = qcowkit_get_info(img, &info);
    if (err < 0)
        return err;
    exp->size = info.virtual_size;
    if (info.cluster_size >= 512 && info.cluster_size <= 65536)
        exp->preferred_block = info.cluster_size;
    return 0;
}

/* ------------------------------------------------------------ connection */

void nbd_conn_init(struct nbd_conn *c, const struct nbd_export *exp,
                   const struct nbd_transport *t)
{
    memset(c, 0, sizeof *c);
    c->exp = exp;
    c->t = *t;
    pthread_mutex_init(&c->send_lock, NULL);
}

void nbd_conn_destroy(struct nbd_conn *c)
{
    pthread_mutex_destroy(&c->send_lock);
}

/* A data buffer of len bytes (len > 0), from c's buffers or malloc. */
static void *buf_get(struct nbd_conn *c, size_t len)
{
    return c->buf_get ? c->buf_get(c->t.opaque, len) : malloc(len);
}

/* Give back buf (or NULL), of len bytes as asked of buf_get. */
static void buf_put(struct nbd_conn *c, void *buf, size_t len)
{
    if (c->buf_put)
        c->buf_put(c->t.opaque, buf, len);
    else
        free(buf);
}

static int drop(struct nbd_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Record why the connection is dropped; returns -1. */
static int drop(struct nbd_conn *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return -1;
}

static int send_iov(struct nbd_conn *c, struct iovec *iov, int n)
{
    int rc;

    pthread_mutex_lock(&c->send_lock);
    if (c->send_failed) {
        rc = -1;
    } else {
        rc = c->t.send(c->t.opaque, iov, n);
        if (rc < 0)
            c->send_failed = true;
    }
    pthread_mutex_unlock(&c->send_lock);
    return rc;
}

/* send_iov whose last element is all of buf, which is freed or taken. */
static int send_iov_take(struct nbd_conn *c, struct iovec *iov, int n,
                         void *buf)
{
    int rc;

    if (!c->send_take) {
        rc = send_iov(c, iov, n);
        buf_put(c, buf, iov[n - 1].iov_len);
        return rc;
    }
    pthread_mutex_lock(&c->send_lock);
    if (c->send_failed) {
        buf_put(c, buf, iov[n - 1].iov_len);
        rc = -1;
    } else {
        rc = c->send_take(c->t.opaque, iov, n, buf);
        if (rc < 0)
            c->send_failed = true;
    }
    pthread_mutex_unlock(&c->send_lock);
    return rc;
}

static int send_buf(struct nbd_conn *c, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};

    return send_iov(c, &iov, 1);
}

static int recv_buf(struct nbd_conn *c, void *buf, size_t len)
{
    if (len == 0)
        return 0;
    return c->t.recv(c->t.opaque, buf, len);
}

/* Read and throw away len bytes. */
static int skip(struct nbd_conn *c, uint64_t len)
{
    uint8_t buf[16384];

    while (len > 0) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;

        if (recv_buf(c, buf, n) < 0)
            return -1;
        len -= n;
    }
    return 0;
}

/* ------------------------------------------------------------- handshake */

static int opt_reply(struct nbd_conn *c, uint32_t opt, uint32_t type,
                     const void *data, uint32_t len)
{
    uint8_t h[20];
    struct iovec iov[2] = {{h, sizeof h}, {(void *)data, len}};

    put64(h, NBD_REP_MAGIC);
    put32(h + 8, opt);
    put32(h + 12, type);
    put32(h + 16, len);
    return send_iov(c, iov, len ? 2 : 1);
}

static int opt_error(struct nbd_conn *c, uint32_t opt, uint32_t type,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An error reply with a message for the user. */
static int opt_error(struct nbd_conn *c, uint32_t opt, uint32_t type,
                     const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    return opt_reply(c, opt, type, msg, (uint32_t)n);
}

static bool name_matches(const struct nbd_conn *c, const uint8_t *name,
                         uint32_t len)
{
    return strlen(c->exp->name) == len && memcmp(c->exp->name, name, len) == 0;
}

static uint16_t tx_flags(const struct nbd_conn *c)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA;

    if (c->exp->read_only)
        f |= NBD_FLAG_READ_ONLY;
    else
        f |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES;
    if (c->structured)
        f |= NBD_FLAG_SEND_DF;
    if (c->exp->multi_conn)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    return f;
}

/* A printable excerpt of a name for messages. */
static int shown(uint32_t len)
{
    return len > 64 ? 64 : (int)len;
}

static int opt_export_name(struct nbd_conn *c, const uint8_t *data,
                           uint32_t len)
{
    uint8_t buf[10 + 124];

    if (!name_matches(c, data, len))
        return drop(c, "unknown export '%.*s' (NBD_OPT_EXPORT_NAME)",
                    shown(len), (const char *)data);
    c->tx_flags = tx_flags(c);
    memset(buf, 0, sizeof buf);
    put64(buf, c->exp->size);
    put16(buf + 8, c->tx_flags);
    if (send_buf(c, buf, c->no_zeroes ? 10 : sizeof buf) < 0)
        return drop(c, "cannot send the export's size");
    return NBD_HS_GO;
}

/* NBD_OPT_INFO and NBD_OPT_GO. */
static int opt_info(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
                    uint32_t len)
{
    const struct nbd_export *e = c->exp;
    uint32_t namelen, i;
    uint16_t nreq, flags;
    bool want_name = false, want_desc = false;
    uint8_t buf[14];
    size_t dlen;

    if (len < 6)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
    namelen = get32(data);
    if (namelen > len - 6)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "export name longer than the option");
    nreq = get16(data + 4 + namelen);
    if ((uint64_t)namelen + 6 + 2 * (uint64_t)nreq != len)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "option length does not match its contents");
    if (!name_matches(c, data + 4, namelen))
        return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "export '%.*s' not found",
                         shown(namelen), (const char *)data + 4);
    for (i = 0; i < nreq; i++) {
        uint16_t t = get16(data + 6 + namelen + 2 * i);

        if (t == NBD_INFO_NAME)
            want_name = true;
        else if (t == NBD_INFO_DESCRIPTION)
            want_desc = true;
    }
    flags = tx_flags(c);
    put16(buf, NBD_INFO_EXPORT);
    put64(buf + 2, e->size);
    put16(buf + 10, flags);
    if (opt_reply(c, opt, NBD_REP_INFO, buf, 12) < 0)
        return -1;
    if (want_name) {
        uint8_t *p = malloc(2 + strlen(e->name));

        if (!p)
            return drop(c, "out of memory");
        put16(p, NBD_INFO_NAME);
        memcpy(p + 2, e->name, strlen(e->name));
        if (opt_reply(c, opt, NBD_REP_INFO, p,
                      (uint32_t)(2 + strlen(e->name))) < 0) {
            free(p);
            return -1;
        }
        free(p);
    }
    if (want_desc && e->description && *e->description) {
        uint8_t *p;

        dlen = strlen(e->description);
        p = malloc(2 + dlen);
        if (!p)
            return drop(c, "out of memory");
        put16(p, NBD_INFO_DESCRIPTION);
        memcpy(p + 2, e->description, dlen);
        if (opt_reply(c, opt, NBD_REP_INFO, p, (uint32_t)(2 + dlen)) < 0) {
            free(p);
            return -1;
        }
        free(p);
    }
    put16(buf, NBD_INFO_BLOCK_SIZE);
    put32(buf + 2, e->min_block);
    put32(buf + 6, e->preferred_block);
    put32(buf + 10, e->max_request);
    if (opt_reply(c, opt, NBD_REP_INFO, buf, 14) < 0)
        return -1;
    if (opt_reply(c, opt, NBD_REP_ACK, NULL, 0) < 0)
        return -1;
    if (opt == NBD_OPT_GO) {
        c->tx_flags = flags;
        return NBD_HS_GO;
    }
    return 0;
}

static int opt_list(struct nbd_conn *c, uint32_t len)
{
    const struct nbd_export *e = c->exp;
    size_t nl = strlen(e->name),
           dl = e->description ? strlen(e->description) : 0;
    uint8_t *p;
    int rc;

    if (len != 0)
        return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                         "NBD_OPT_LIST takes no data");
    p = malloc(4 + nl + dl);
    if (!p)
        return drop(c, "out of memory");
    put32(p, (uint32_t)nl);
    memcpy(p + 4, e->name, nl);
    if (dl)
        memcpy(p + 4 + nl, e->description, dl);
    rc = opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER, p, (uint32_t)(4 + nl + dl));
    free(p);
    if (rc < 0)
        return -1;
    return opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. */
static int opt_meta(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
                    uint32_t len)
{
    static const char base[] = NBD_META_BASE_ALLOCATION;
    bool set = opt == NBD_OPT_SET_META_CONTEXT, match = false;
    uint32_t namelen, nq, i, pos;
    uint8_t reply[4 + sizeof base - 1];

    if (set)
        c->base_alloc = false;
    if (!c->structured)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "structured replies are not negotiated");
    if (len < 8)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "option too short");
    namelen = get32(data);
    if (namelen > len - 8)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "export name longer than the option");
    pos = 4 + namelen;
    nq = get32(data + pos);
    pos += 4;
    /* Check the whole list before acting on any of it. */
    for (i = 0; i < nq; i++) {
        uint32_t ql;

        if (len - pos < 4)
            return opt_error(c, opt, NBD_REP_ERR_INVALID,
                             "query count larger than the option");
        ql = get32(data + pos);
        pos += 4;
        if (ql > len - pos)
            return opt_error(c, opt, NBD_REP_ERR_INVALID,
                             "query longer than the option");
        if (ql > NBD_MAX_STRING)
            return opt_error(c, opt, NBD_REP_ERR_INVALID, "query too long");
        pos += ql;
    }
    if (pos != len)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "data after the last query");
    if (!name_matches(c, data + 4, namelen))
        return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "export '%.*s' not found",
                         shown(namelen), (const char *)data + 4);
    pos = 8 + namelen;
    if (nq == 0)
        match = !set; /* list: everything; set: nothing */
    for (i = 0; i < nq; i++) {
        uint32_t ql = get32(data + pos);
        const uint8_t *q = data + pos + 4;

        pos += 4 + ql;
        if (ql == sizeof base - 1 && memcmp(q, base, ql) == 0)
            match = true;
        else if (!set && ql == 5 && memcmp(q, "base:", 5) == 0)
            match = true;
    }
    if (match) {
        put32(reply, set ? NBD_META_ID_BASE_ALLOC : 0);
        memcpy(reply + 4, base, sizeof base - 1);
        if (opt_reply(c, opt, NBD_REP_META_CONTEXT, reply, sizeof reply) < 0)
            return -1;
    }
    if (set)
        c->base_alloc = match;
    return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

static int handle_option(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
                         uint32_t len)
{
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return opt_export_name(c, data, len);
    case NBD_OPT_ABORT:
        /* The client may already be gone: a failed ACK does not matter. */
        opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
        return NBD_HS_QUIT;
    case NBD_OPT_LIST:
        return opt_list(c, len);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info(c, opt, data, len);
    case NBD_OPT_STRUCTURED_REPLY:
        if (len != 0)
            return opt_error(c, opt, NBD_REP_ERR_INVALID,
                             "NBD_OPT_STRUCTURED_REPLY takes no data");
        c->structured = true;
        return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        return opt_meta(c, opt, data, len);
    case NBD_OPT_STARTTLS:
        return opt_error(c, opt, NBD_REP_ERR_POLICY, "TLS is not supported");
    default:
        return opt_error(c, opt, NBD_REP_ERR_UNSUP,
                         "option %u is not supported", opt);
    }
}

int nbd_handshake(struct nbd_conn *c)
{
    uint8_t hello[18], h[16], cf[4];
    uint32_t flags;

    put64(hello, NBD_MAGIC);
    put64(hello + 8, NBD_IHAVEOPT);
    put16(hello + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if (send_buf(c, hello, sizeof hello) < 0)
        return drop(c, "cannot send the greeting");
    if (recv_buf(c, cf, sizeof cf) < 0)
        return drop(c, "no client flags");
    flags = get32(cf);
    if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
        return drop(c, "unknown client flags %#x", flags);
    c->fixed = flags & NBD_FLAG_C_FIXED_NEWSTYLE;
    c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
    for (;;) {
        uint32_t opt, len;
        uint8_t *data;
        int rc;

        if (recv_buf(c, h, sizeof h) < 0)
            return drop(c, "the client left during the handshake");
        if (get64(h) != NBD_IHAVEOPT)
            return drop(c, "bad option magic");
        opt = get32(h + 8);
        len = get32(h + 12);
        if (++c->n_options > NBD_MAX_OPTIONS)
            return drop(c, "more than %u options", NBD_MAX_OPTIONS);
        if (!c->fixed && opt != NBD_OPT_EXPORT_NAME)
            return drop(c, "option %u without fixed newstyle", opt);
        if (len > NBD_MAX_OPTION_LEN) {
            if (opt == NBD_OPT_EXPORT_NAME || len > NBD_MAX_SKIP_LEN)
                return drop(c, "option %u with %u bytes of data", opt, len);
            if (skip(c, len) < 0)
                return drop(c, "the client left during the handshake");
            if (opt_error(c, opt, NBD_REP_ERR_TOO_BIG,
                          "option data too long (%u bytes)", len) < 0)
                return drop(c, "cannot send an option reply");
            continue;
        }
        data = malloc(len + 1);
        if (!data)
            return drop(c, "out of memory");
        if (recv_buf(c, data, len) < 0) {
            free(data);
            return drop(c, "the client left during the handshake");
        }
        data[len] = 0;
        rc = handle_option(c, opt, data, len);
        free(data);
        if (rc < 0) {
            if (!c->why[0])
                drop(c, "cannot send an option reply");
            return -1;
        }
        if (rc == NBD_HS_GO || rc == NBD_HS_QUIT)
            return rc;
    }
}

/* ---------------------------------------------------------- transmission */

uint32_t nbd_errno(int err)
{
    switch (-err) {
    case 0:
        return 0;
    case EPERM:
    case EROFS:
    case EACCES:
        return NBD_EPERM;
    case EINVAL:
        return NBD_EINVAL;
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOMEM:
        return NBD_ENOMEM;
    case ENOTSUP:
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

static bool is_write(uint16_t type)
{
    return type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES ||
           type == NBD_CMD_TRIM;
}

/* The NBD error for a request that must not run, or 0. */
static uint32_t check_request(const struct nbd_conn *c, struct nbd_request *r)
{
    const struct nbd_export *e = c->exp;
    uint16_t allowed = NBD_CMD_FLAG_FUA;

    switch (r->type) {
    case NBD_CMD_READ:
        if (c->structured)
            allowed |= NBD_CMD_FLAG_DF;
        break;
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
    case NBD_CMD_FLUSH:
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed |= NBD_CMD_FLAG_NO_HOLE;
        break;
    case NBD_CMD_BLOCK_STATUS:
        allowed |= NBD_CMD_FLAG_REQ_ONE;
        break;
    default:
        r->why = "unknown command";
        return NBD_EINVAL;
    }
    if (r->flags & ~allowed) {
        r->why = "command flags not valid for this command";
        return NBD_EINVAL;
    }
    if (r->type == NBD_CMD_FLUSH) {
        if (r->offset || r->len) {
            r->why = "flush with an offset or a length";
            return NBD_EINVAL;
        }
        return 0;
    }
    if (r->type == NBD_CMD_BLOCK_STATUS && !c->base_alloc) {
        r->why = "no metadata context was negotiated";
        return NBD_EINVAL;
    }
    if (is_write(r->type) && e->read_only) {
        r->why = "the export is read-only";
        return NBD_EPERM;
    }
    if ((r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) &&
        r->len > e->max_request) {
        r->why = "request larger than the maximum block size";
        return (r->flags & NBD_CMD_FLAG_DF) ? NBD_EOVERFLOW : NBD_EINVAL;
    }
    if (r->offset > e->size || r->len > e->size - r->offset) {
        r->why = "request past the end of the export";
        return (r->type == NBD_CMD_WRITE || r->type == NBD_CMD_WRITE_ZEROES)
                   ? NBD_ENOSPC
                   : NBD_EINVAL;
    }
    if (r->type == NBD_CMD_BLOCK_STATUS && r->len == 0) {
        r->why = "block status of no bytes";
        return NBD_EINVAL;
    }
    return 0;
}

int nbd_recv_header(struct nbd_conn *c, struct nbd_request *r)
{
    uint8_t h[NBD_REQUEST_LEN];

    memset(r, 0, sizeof *r);
    if (recv_buf(c, h, sizeof h) < 0)
        return drop(c, "the client left without NBD_CMD_DISC");
    return nbd_parse_header(c, h, r);
}

int nbd_parse_header(struct nbd_conn *c, const uint8_t *h,
                     struct nbd_request *r)
{
    memset(r, 0, sizeof *r);
    if (get32(h) != NBD_REQUEST_MAGIC)
        return drop(c, "bad request magic %#x", get32(h));
    r->flags = get16(h + 4);
    r->type = get16(h + 6);
    r->cookie = get64(h + 8);
    r->offset = get64(h + 16);
    r->len = get32(h + 24);
    if (r->type == NBD_CMD_DISC)
        return 0;
    if (r->type == NBD_CMD_WRITE)
        r->payload = r->len;
    r->error = check_request(c, r);
    if (!r->error && (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE))
        r->cost = r->len;
    return 1;
}

int nbd_recv_payload(struct nbd_conn *c, struct nbd_request *r)
{
    if (r->payload == 0)
        return 0;
    if (!r->error) {
        r->data = buf_get(c, r->payload);
        if (r->data) {
            if (recv_buf(c, r->data, r->payload) < 0)
                return drop(c, "the client left in a write's data");
            return 0;
        }
        r->error = NBD_ENOMEM;
        r->why = "out of memory";
    }
    if (skip(c, r->payload) < 0)
        return drop(c, "the client left in a write's data");
    return 0;
}

void nbd_request_free(struct nbd_request *r)
{
    free(r->data);
    r->data = NULL;
}

static int send_simple(struct nbd_conn *c, const struct nbd_request *r,
                       uint32_t error, const void *data, size_t len)
{
    uint8_t h[16];
    struct iovec iov[2] = {{h, sizeof h}, {(void *)data, len}};

    put32(h, NBD_SIMPLE_MAGIC);
    put32(h + 4, error);
    put64(h + 8, r->cookie);
    return send_iov(c, iov, len ? 2 : 1);
}

static void chunk_header(uint8_t *h, const struct nbd_request *r,
                         uint16_t flags, uint16_t type, uint32_t len)
{
    put32(h, NBD_STRUCT_MAGIC);
    put16(h + 4, flags);
    put16(h + 6, type);
    put64(h + 8, r->cookie);
    put32(h + 16, len);
}

/* The error reply: a structured error chunk with a message, or simple. */
static int send_error(struct nbd_conn *c, const struct nbd_request *r,
                      uint32_t error, const char *msg)
{
    uint8_t h[20 + 6];
    size_t ml = msg ? strlen(msg) : 0;
    struct iovec iov[2];

    if (!c->structured)
        return send_simple(c, r, error, NULL, 0);
    if (ml > NBD_MAX_STRING)
        ml = NBD_MAX_STRING;
    chunk_header(h, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                 (uint32_t)(6 + ml));
    put32(h + 20, error);
    put16(h + 24, (uint16_t)ml);
    iov[0] = (struct iovec){h, sizeof h};
    iov[1] = (struct iovec){(void *)msg, ml};
    return send_iov(c, iov, ml ? 2 : 1);
}

/* A failed library call: its errno and this thread's message. */
static int send_lib_error(struct nbd_conn *c, const struct nbd_request *r,
                          int err)
{
    char msg[512];

    snprintf(msg, sizeof msg, "%s", qcowkit_errmsg());
    if (!msg[0])
        snprintf(msg, sizeof msg, "%s", strerror(-err));
    return send_error(c, r, nbd_errno(err), msg);
}

/* A read's reply; data (from buf_get) is given back or taken. */
static int send_read(struct nbd_conn *c, const struct nbd_request *r,
                     void *data)
{
    uint8_t h[28];
    struct iovec iov[2] = {{h, sizeof h}, {data, r->len}};

    if (r->len == 0) {
        buf_put(c, data, 1);
        if (!c->structured)
            return send_simple(c, r, 0, NULL, 0);
        chunk_header(h, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE, 0);
        iov[0].iov_len = 20;
        return send_iov(c, iov, 1);
    }
    if (!c->structured) {
        put32(h, NBD_SIMPLE_MAGIC);
        put32(h + 4, 0);
        put64(h + 8, r->cookie);
        iov[0].iov_len = 16;
        return send_iov_take(c, iov, 2, data);
    }
    chunk_header(h, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                 r->len + 8);
    put64(h + 20, r->offset);
    return send_iov_take(c, iov, 2, data);
}

/*
 * base:allocation of the chain at off: *run bytes (1..len) with *flags.
 * Data in any layer is data; what reads as zeros (no layer holds it, or a
 * hole of a raw file) is a hole.
 */
static int chain_status(const struct nbd_export *e, uint64_t off, uint64_t len,
                        uint64_t *run, uint32_t *flags)
{
    struct qcowkit_chain_extent x;
    int err;

    qcowkit_chain_extent_init(&x);
    err = qcowkit_block_status_chain(e->img, off, len, &x);
    if (err < 0)
        return err;
    *run = x.length;
    *flags =
        x.flags & QCOWKIT_EXTENT_ZERO ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
    return 0;
}

static int do_block_status(struct nbd_conn *c, const struct nbd_request *r)
{
    uint32_t max = (r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS;
    uint64_t pos = r->offset, end = r->offset + r->len;
    unsigned lookups = 0;
    uint32_t n = 0;
    uint8_t *buf = malloc(20 + 4 + 8 * (size_t)max);
    struct iovec iov;
    int rc;

    if (!buf)
        return send_error(c, r, NBD_ENOMEM, "out of memory");
    while (pos < end && lookups++ < 65536) {
        uint64_t run;
        uint32_t flags;
        int err = chain_status(c->exp, pos, end - pos, &run, &flags);

        if (err < 0) {
            if (n > 0)
                break;
            free(buf);
            return send_lib_error(c, r, err);
        }
        if (n > 0 && get32(buf + 24 + 8 * (n - 1) + 4) == flags) {
            uint8_t *d = buf + 24 + 8 * (n - 1);
            put32(d, (uint32_t)(get32(d) + run)); /* sum <= r->len */
        } else {
            if (n == max)
                break;
            put32(buf + 24 + 8 * n, (uint32_t)run);
            put32(buf + 24 + 8 * n + 4, flags);
            n++;
        }
        pos += run;
    }
    chunk_header(buf, r, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
                 4 + 8 * n);
    put32(buf + 20, NBD_META_ID_BASE_ALLOC);
    iov = (struct iovec){buf, 24 + 8 * (size_t)n};
    rc = send_iov(c, &iov, 1);
    free(buf);
    return rc;
}

/*
 * The three writes.  TRIM gives whole clusters back (they read from the
 * backing file or as zeros, as NBD allows); WRITE_ZEROES may unmap
 * unless the client asked for NO_HOLE.
 */
static int do_write(struct qcowkit_image *img, const struct nbd_request *r)
{
    unsigned zero_flags = QCOWKIT_ZEROES_MAY_UNMAP;

    if (r->type == NBD_CMD_WRITE)
        return qcowkit_pwrite(img, r->data, r->len, r->offset);
    if (r->type == NBD_CMD_TRIM)
        return qcowkit_discard(img, r->offset, r->len);
    if (r->flags & NBD_CMD_FLAG_NO_HOLE)
        zero_flags = 0;
    return qcowkit_pwrite_zeroes_flags(img, r->len, r->offset, zero_flags);
}

int nbd_handle_request(struct nbd_conn *c, struct nbd_request *r)
{
    struct qcowkit_image *img = c->exp->img;
    int err = 0, rc;
    uint8_t *buf;

    if (r->error) {
        rc = send_error(c, r, r->error, r->why);
        goto out;
    }
    switch (r->type) {
    case NBD_CMD_READ:
        buf = buf_get(c, r->len ? r->len : 1);
        if (!buf) {
            rc = send_error(c, r, NBD_ENOMEM, "out of memory");
            break;
        }
        if (r->len)
            err = qcowkit_pread(img, buf, r->len, r->offset);
        if (err < 0) {
            buf_put(c, buf, r->len ? r->len : 1);
            rc = send_lib_error(c, r, err);
        } else {
            rc = send_read(c, r, buf);
        }
        break;
    case NBD_CMD_WRITE:
    case NBD_CMD_WRITE_ZEROES:
    case NBD_CMD_TRIM:
        if (r->len)
            err = do_write(img, r);
        if (err == 0 && (r->flags & NBD_CMD_FLAG_FUA))
            err = qcowkit_flush(img);
        rc =
            err < 0 ? send_lib_error(c, r, err) : send_simple(c, r, 0, NULL, 0);
        break;
    case NBD_CMD_FLUSH:
        err = qcowkit_flush(img);
        rc =
            err < 0 ? send_lib_error(c, r, err) : send_simple(c, r, 0, NULL, 0);
        break;
    case NBD_CMD_BLOCK_STATUS:
        rc = do_block_status(c, r);
        break;
    default: /* check_request() refused it already */
        rc = send_error(c, r, NBD_EINVAL, "unknown command");
        break;
    }
out:
    buf_put(c, r->data, r->payload);
    r->data = NULL;
    return rc;
}
