/*
 * fuzz-nbd: the NBD server's protocol code (tools/nbd/protocol.c) fed a
 * client's byte stream in-process, against an image in memory.
 *
 * Input layout:
 *   byte 0    mode: bit 0 read-only export, bit 1 raw image (else qcow),
 *             bit 2 export name "disk" (else ""), bit 3 with a description
 *   then      what a client sends: the handshake, then requests
 *
 * The handshake runs, then (if it entered transmission) requests are read
 * and handled one at a time as the server's threads would, until the
 * stream ends, NBD_CMD_DISC, or MAX_REQUESTS.  Replies go through a send
 * function that checks each one starts with a known magic (or is the
 * NBD_OPT_EXPORT_NAME answer) and is not larger than the biggest reply
 * allowed.  A crash, leak, hang or failed check is a bug.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "qcowkit.h"

#define IMAGE_SIZE   (UINT64_C(1) << 20)
#define MAX_REQUESTS 512

struct stream {
    const uint8_t *p;
    size_t n;
    size_t sent;
};

static int s_recv(void *opaque, void *buf, size_t len)
{
    struct stream *s = opaque;

    if (len > s->n)
        return -1;
    memcpy(buf, s->p, len);
    s->p += len;
    s->n -= len;
    return 0;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int s_send(void *opaque, const struct iovec *iov, int iovcnt)
{
    struct stream *s = opaque;
    size_t total = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (iovcnt < 1 || total < 10 || total > NBD_MAX_REQUEST + 64)
        abort();
    if (iov[0].iov_len >= 8) {
        const uint8_t *h = iov[0].iov_base;
        uint64_t m64 = be64(h);
        uint32_t m32 = be32(h);

        if (m64 != NBD_MAGIC && m64 != NBD_REP_MAGIC &&
            m32 != NBD_SIMPLE_MAGIC && m32 != NBD_STRUCT_MAGIC &&
            m64 != IMAGE_SIZE) /* NBD_OPT_EXPORT_NAME: the size */
            abort();
    }
    s->sent += total;
    return 0;
}

static struct qcowkit_image *make_image(unsigned mode, struct qcowkit_io **io)
{
    struct qcowkit_create_opts c;
    struct qcowkit_open_opts o;
    struct qcowkit_image *img = NULL;
    static uint8_t pattern[8192];

    *io = NULL;
    if (qcowkit_io_new_memory(NULL, 0, io) != 0)
        return NULL;
    qcowkit_create_opts_init(&c);
    c.format = (mode & 2) ? QCOWKIT_FORMAT_RAW : QCOWKIT_FORMAT_QCOW;
    c.size = IMAGE_SIZE;
    c.cluster_size = 512;
    if (qcowkit_create_io(*io, "fuzz-nbd.img", &c) != 0)
        goto fail;
    qcowkit_open_opts_init(&o);
    o.flags = QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_BACKING;
    o.format = c.format;
    if (qcowkit_open_io(*io, "fuzz-nbd.img", &o, &img) != 0)
        goto fail;
    /* Some data, so that reads and block status see both kinds. */
    memset(pattern, 0xa5, sizeof pattern);
    if (qcowkit_pwrite(img, pattern, sizeof pattern, 65536) != 0 ||
        qcowkit_pwrite(img, pattern, 1000, IMAGE_SIZE - 1000) != 0)
        goto fail;
    return img;
fail:
    qcowkit_close(img);
    qcowkit_io_close(*io);
    *io = NULL;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stream s = {0};
    struct nbd_transport t = {s_recv, s_send, &s};
    struct nbd_export *exp;
    struct nbd_conn conn;
    struct qcowkit_image *img;
    struct qcowkit_io *io;
    unsigned mode;

    if (size < 1)
        return 0;
    mode = data[0];
    s.p = data + 1;
    s.n = size - 1;
    img = make_image(mode, &io);
    if (!img)
        abort();
    exp = malloc(sizeof *exp);
    if (!exp)
        abort();
    if (nbd_export_init(exp, img, (mode & 4) ? "disk" : "",
                        (mode & 8) ? "a fuzzed disk" : NULL, mode & 1) != 0)
        abort();
    if (exp->size != IMAGE_SIZE)
        abort();
    nbd_conn_init(&conn, exp, &t);
    if (nbd_handshake(&conn) == NBD_HS_GO) {
        for (int i = 0; i < MAX_REQUESTS; i++) {
            struct nbd_request r;

            if (nbd_recv_header(&conn, &r) <= 0)
                break;
            if (r.cost > exp->max_request)
                abort();
            if (nbd_recv_payload(&conn, &r) < 0) {
                nbd_request_free(&r);
                break;
            }
            if (nbd_handle_request(&conn, &r) < 0)
                break;
        }
    }
    nbd_conn_destroy(&conn);
    free(exp);
    qcowkit_close(img);
    qcowkit_io_close(io);
    return 0;
}
