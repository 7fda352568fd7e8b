/* Backing files: resolving the stored name and opening the chain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A relative name is taken from the folder of the image, as QEMU does. */
static char *resolve_name(const char *image_name, const char *backing)
{
    const char *slash = strrchr(image_name, '/');
    size_t dir_len;
    char *path;

    if (backing[0] == '/' || !slash)
        return strdup(backing);
    dir_len = (size_t)(slash - image_name) + 1;
    path = malloc(dir_len + strlen(backing) + 1);
    if (path) {
        memcpy(path, image_name, dir_len);
        strcpy(path + dir_len, backing);
    }
    return path;
}

static bool in_chain(const struct qk_open_params *p,
                     const struct qcowkit_io *io)
{
    for (; p; p = p->above)
        if (p->self.known && p->self.dev == io->dev && p->self.ino == io->ino)
            return true;
    return false;
}

int qk_open_backing(struct qcowkit_image *img, const struct qk_open_params *p)
{
    struct qk_open_params next;
    struct qcowkit_io *io;
    int err;

    if (p->depth + 1 >= QK_MAX_CHAIN)
        return qk_error(-ELOOP, "%s: backing chain is deeper than %d images",
                        img->name, QK_MAX_CHAIN);
    img->backing_path = resolve_name(img->name, img->backing_file);
    if (!img->backing_path)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    err = qcowkit_io_open_file(img->backing_path, QCOWKIT_IO_RDONLY, &io);
    if (err < 0)
        return qk_error(err, "%s: cannot open backing file '%s': %s", img->name,
                        img->backing_path, strerror(-err));
    if (in_chain(p, io)) {
        qcowkit_io_close(io);
        return qk_error(-ELOOP,
                        "%s: backing file '%s' makes a loop in the backing "
                        "chain",
                        img->name, img->backing_path);
    }
    if (!(p->flags & QCOWKIT_OPEN_FORCE_SHARE))
        err = qk_lock_image(io, false, img->backing_path);
    if (err < 0) {
        qcowkit_io_close(io);
        return err;
    }
    memset(&next, 0, sizeof next);
    next.name = img->backing_path;
    next.flags = QCOWKIT_OPEN_RDONLY | (p->flags & QCOWKIT_OPEN_FORCE_SHARE);
    next.format = p->backing_format;
    next.backing_format = QCOWKIT_FORMAT_AUTO;
    next.cache_bytes = p->cache_bytes;
    next.key = p->key;
    next.key_len = p->key_len;
    next.self.dev = io->dev;
    next.self.ino = io->ino;
    next.self.known = true;
    next.above = p;
    next.depth = p->depth + 1;
    return qk_open_chain(io, true, &next, &img->backing);
}
