/* cli-extent.c - what an image holds: chain status, zero buffers. */
#include <string.h>

#include "cli.h"

/* ----------------------------------------------------------- chain status */

int cli_chain_status(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                     struct qcowkit_chain_extent *x)
{
    qcowkit_chain_extent_init(x);
    return qcowkit_block_status_chain(img, offset, count, x);
}

bool cli_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (len == 0)
        return true;
    if (p[0])
        return false;
    return memcmp(p, p + 1, len - 1) == 0;
}
