/* Backing file names: resolving the stored one, refusing the image itself. */
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
