/* cmd-io-data.c - qcowkit io: reads and writes as qemu-io sees the image.
 * QEMU sees a raw file as whole sectors: its length is rounded up to 512,
 * the tail past the end of the file reads as zeros, and a write there
 * extends the file.  With -C, reads also store what the backing chain
 * gave into the top image, a cluster at a time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-io.h"

#define COPY_CHUNK (1u << 20)

uint64_t io_size(struct io_ctx *ctx)
{
    uint64_t size = cli_image_size(ctx->img);

    if (ctx->raw && size % SECTOR)
        size += SECTOR - size % SECTOR;
    return size;
}

/* Read [at, at + len) through the chain and write it to the top image. */
static int copy_run(struct io_ctx *ctx, uint64_t at, uint64_t len)
{
    uint8_t *buf = malloc(len < COPY_CHUNK ? (size_t)len : COPY_CHUNK);
    int ret = buf ? 0 : -ENOMEM;

    while (ret == 0 && len > 0) {
        size_t n = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;

        ret = qcowkit_pread(ctx->img, buf, n, at);
        if (ret == 0)
            ret = qcowkit_pwrite(ctx->img, buf, n, at);
        at += n;
        len -= n;
    }
    free(buf);
    return ret;
}

/* -C: the clusters under [offset, +count) that the top image lacks. */
static int copy_on_read(struct io_ctx *ctx, uint64_t offset, uint64_t count)
{
    struct qcowkit_info info;
    uint64_t size = cli_image_size(ctx->img), start, end, cs;
    int ret = cli_get_info(ctx->img, &info);

    if (ret < 0 || count == 0 || info.cluster_size == 0)
        return ret;
    cs = info.cluster_size;
    start = offset / cs * cs;
    end = (offset + count + cs - 1) / cs * cs;
    if (end > size)
        end = size;
    for (uint64_t at = start; at < end;) {
        uint64_t run;
        int allocated = io_is_allocated(ctx, at, end - at, &run);

        if (allocated < 0)
            return allocated;
        if (run == 0)
            break;
        if (!allocated && (ret = copy_run(ctx, at, run)) < 0)
            return ret;
        at += run;
    }
    return 0;
}

/* A read io_check_request allowed: past a raw file's end come zeros. */
int io_pread(struct io_ctx *ctx, uint8_t *buf, uint64_t count, uint64_t offset)
{
    uint64_t real = cli_image_size(ctx->img);
    uint64_t n = offset >= real          ? 0
                 : real - offset < count ? real - offset
                                         : count;
    int ret = n ? qcowkit_pread(ctx->img, buf, (size_t)n, offset) : 0;

    if (ret < 0)
        return ret;
    memset(buf + n, 0, (size_t)(count - n));
    if (ctx->copy_on_read && !ctx->read_only)
        ret = copy_on_read(ctx, offset, n);
    return ret;
}

/* Before a write io_check_request allowed: a raw file grows to hold it. */
int io_extend_raw(struct io_ctx *ctx, uint64_t offset, uint64_t count)
{
    if (!ctx->raw || offset + count <= cli_image_size(ctx->img))
        return 0;
    return qcowkit_resize(ctx->img, offset + count);
}
