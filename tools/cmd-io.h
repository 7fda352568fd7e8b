/* cmd-io.h - what the files of qcowkit io (cmd-io*.c) share. */
#ifndef QCOWKIT_CMD_IO_H
#define QCOWKIT_CMD_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

#define REQUEST_MAX_BYTES UINT64_C(2147483136) /* QEMU's per-request limit */
#define SECTOR            512u

/* How an image is opened: the command line's options or open's. */
struct io_open_opts {
    const char *fmt;
    const char *options; /* open -o: image options besides the file name */
    bool image_opts, force_share, snapshot, read_only, copy_on_read;
};

struct io_ctx {
    struct qcowkit_image *img; /* NULL: no file open */
    bool read_only;
    bool encrypted;    /* the top image is AES-encrypted */
    bool copy_on_read; /* -C: reads store what the backing chain gave */
    bool raw;          /* sizes are whole sectors, as QEMU sees a raw file */
    bool quit;
};

struct io_cmd {
    const char *name;
    const char *altname;
    int (*fn)(struct io_ctx *ctx, int argc, char **argv);
    int argmin, argmax; /* argmax -1: no limit */
    const char *args;   /* NULL: none shown */
    const char *oneline;
};

/* cmd-io.c: parsing and reporting as qemu-io does them. */
const struct io_cmd *io_find_cmd(const char *name);
void io_usage(const struct io_cmd *c);
int64_t io_cvtnum(const char *s);
void io_print_cvtnum_err(int64_t rc, const char *arg);
int io_parse_pattern(const char *arg);
double io_now(void);
void io_print_report(const char *op, double t, int64_t offset, int64_t count,
                     int64_t total, int cnt, bool compact);
void io_dump_buffer(const uint8_t *buf, int64_t offset, int64_t len);
int io_check_request(struct io_ctx *ctx, int64_t offset, int64_t count);
int io_write_zero_buffer(struct io_ctx *ctx, int64_t offset, int64_t count);
int io_is_allocated(struct io_ctx *ctx, uint64_t offset, uint64_t bytes,
                    uint64_t *pnum);

/* cmd-io-data.c: reads and writes with raw tails and copy-on-read. */
uint64_t io_size(struct io_ctx *ctx);
int io_pread(struct io_ctx *ctx, uint8_t *buf, uint64_t count, uint64_t offset);
int io_extend_raw(struct io_ctx *ctx, uint64_t offset, uint64_t count);

/* cmd-io-snapshot.c: -s, writes into a temporary overlay. */
int io_open_snapshot(const char *arg, bool image_opts,
                     enum qcowkit_format format, struct qcowkit_image **img,
                     bool *encrypted);

/* cmd-io-open.c: the image, opened and closed; truncate. */
int io_open_image(struct io_ctx *ctx, const struct io_open_opts *o,
                  const char *arg);
int open_f(struct io_ctx *ctx, int argc, char **argv);
int close_f(struct io_ctx *ctx, int argc, char **argv);
int truncate_f(struct io_ctx *ctx, int argc, char **argv);

/* cmd-io-vec.c: readv, writev and the aio_ forms, run in order. */
int readv_f(struct io_ctx *ctx, int argc, char **argv);
int writev_f(struct io_ctx *ctx, int argc, char **argv);
int aio_read_f(struct io_ctx *ctx, int argc, char **argv);
int aio_write_f(struct io_ctx *ctx, int argc, char **argv);
int aio_flush_f(struct io_ctx *ctx, int argc, char **argv);

/* cmd-io-discard.c: discard, giving the space back. */
int discard_f(struct io_ctx *ctx, int argc, char **argv);

#endif
