/* Backing files: resolving the stored name and opening the chain. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* A relative name is taken from the folder of the image, as QEMU does. */
char *qk_resolve_backing(const char *image_name, const char *backing)
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

/*
 * The absolute path of a file that may not exist yet: its folder through
 * realpath(3), then its last component.  NULL if the folder is missing.
 */
static char *canonical(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], *out;
    char *dir_name;

    out = realpath(path, NULL);
    if (out)
        return out;
    dir_name = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup(".");
    if (!dir_name || !realpath(dir_name, dir)) {
        free(dir_name);
        return NULL;
    }
    free(dir_name);
    out = malloc(strlen(dir) + strlen(path) + 2);
    if (out)
        sprintf(out, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir,
                slash ? slash + 1 : path);
    return out;
}

static bool same_path(const char *a, const char *b)
{
    char *ca = canonical(a), *cb = canonical(b);
    bool same = ca && cb && strcmp(ca, cb) == 0;

    free(ca);
    free(cb);
    return same;
}

int qk_refuse_self_backing(const char *image, const char *backing,
                           const struct qcowkit_io *io)
{
    struct stat si, sb;
    bool have_image, same;
    char *path;

    if (!backing || !backing[0])
        return 0;
    path = qk_resolve_backing(image, backing);
    if (!path)
        return qk_error(-ENOMEM, "%s: out of memory", image);
    if (io && io->identity_known) {
        si.st_dev = io->dev;
        si.st_ino = io->ino;
        have_image = true;
    } else {
        have_image = !io && stat(image, &si) == 0;
    }
    if (have_image && stat(path, &sb) == 0)
        same = si.st_dev == sb.st_dev && si.st_ino == sb.st_ino;
    else
        same = !io && same_path(image, path); /* not created yet */
    free(path);
    if (same)
        return qk_error(-EINVAL,
                        "%s: backing file '%s' is the image itself; refusing "
                        "to make an image its own backing file",
                        image, backing);
    return 0;
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
    const char *why;
    int err;

    if (p->depth + 1 >= QK_MAX_CHAIN)
        return qk_error(-ELOOP, "%s: backing chain is deeper than %d images",
                        img->name, QK_MAX_CHAIN);
    img->backing_path = qk_resolve_backing(img->name, img->backing_file);
    if (!img->backing_path)
        return qk_error(-ENOMEM, "%s: out of memory", img->name);
    err = qk_io_open_file(img->backing_path, QCOWKIT_IO_RDONLY, &io, &why);
    if (err < 0)
        return qk_error(err, "%s: cannot open backing file '%s': %s", img->name,
                        img->backing_path, why);
    if (in_chain(p, io)) {
        qcowkit_io_close(io);
        return qk_error(-ELOOP,
                        "%s: backing file '%s' makes a loop in the backing "
                        "chain",
                        img->name, img->backing_path);
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
