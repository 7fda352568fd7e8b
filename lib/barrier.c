/*
 * Durability barriers, and the one owner of data_unsynced: whether data
 * reached the backend since the last barrier.  It is set only once a
 * transfer is done (with the handle's mutex held), never before, and
 * cleared by a barrier that succeeded: a write landing while a barrier
 * runs marks the handle again afterwards.
 */
#include "internal.h"

int qk_barrier(struct qcowkit_image *img)
{
    int err = img->no_sync ? 0 : qk_sync(img->io);

    if (err == 0)
        img->data_unsynced = false;
    return err;
}

void qk_data_written(struct qcowkit_image *img)
{
    img->data_unsynced = true;
}

int qk_barrier_if_written(struct qcowkit_image *img)
{
    return img->data_unsynced ? qk_barrier(img) : 0;
}
