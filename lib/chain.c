/*
 * Block status through a backing chain: which layer answers a guest
 * range, or that it reads as zeros.  The one walk of the chain that the
 * map, compare, convert, measure and NBD paths share, so that short
 * backing files and raw holes are judged in one place.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define CHAIN_EXTENT_MIN QK_END_OF(struct qcowkit_chain_extent, layer)

/* Take the answer of layer (at x->depth) for the run in x. */
static void answered(struct qcowkit_chain_extent *x,
                     struct qcowkit_image *layer,
                     const struct qcowkit_extent *e)
{
    x->length = e->length;
    x->layer = layer;
    x->flags = e->flags;
    x->host_offset = e->host_offset;
}

/*
 * Ask each layer in turn until one holds the run.  The run only shrinks
 * on the way down: to what the layer above left unallocated, and to the
 * end of a shorter backing file.
 */
static int walk(struct qcowkit_image *top, struct qcowkit_chain_extent *x)
{
    struct qcowkit_image *layer = top;

    for (;;) {
        struct qcowkit_extent e;
        struct qcowkit_image *below;
        int err;

        qk_access_shared(layer);
        err = qk_block_status(layer, x->offset, x->length, &e);
        qk_access_leave(layer);
        if (err < 0)
            return err;
        answered(x, layer, &e);
        if (e.flags & QCOWKIT_EXTENT_ALLOCATED) {
            if (x->length > QCOWKIT_CHAIN_MAX_RUN)
                x->length = QCOWKIT_CHAIN_MAX_RUN;
            return 0;
        }
        below = layer->backing;
        /* No backing, or one that ends before offset: QEMU reads zeros. */
        if (!below || x->offset >= below->virtual_size) {
            x->flags = QCOWKIT_EXTENT_ZERO;
            return 0;
        }
        if (x->length > below->virtual_size - x->offset)
            x->length = below->virtual_size - x->offset;
        layer = below;
        x->depth++;
    }
}

/*
 * Each layer's access lock is held in turn, never two at once; a resize
 * of img between the range check and the walk makes the walk fail as
 * qcowkit_block_status does.
 */
int qcowkit_block_status_chain(struct qcowkit_image *img, uint64_t offset,
                               uint64_t count,
                               struct qcowkit_chain_extent *extent)
{
    struct qcowkit_chain_extent full;
    int err = qk_abi_out_check(extent, CHAIN_EXTENT_MIN,
                               "qcowkit_block_status_chain: struct "
                               "qcowkit_chain_extent");

    if (err < 0)
        return err;
    qk_access_shared(img);
    err = qk_status_range(img, "chain block status", offset, count);
    qk_access_leave(img);
    if (err < 0)
        return err;
    memset(&full, 0, sizeof full);
    full.offset = offset;
    full.length = count;
    err = walk(img, &full);
    if (err < 0)
        return err;
    qk_abi_out(extent, &full, sizeof full);
    return 0;
}
