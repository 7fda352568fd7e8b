/*
 * filter.c - nbdkit-qcow-filter: exports the guest disk of a qcow
 * (version 1) image that the plugin below serves, read-only.
 *
 *   nbdkit curl http://host/disk.qcow --filter=qcow
 *          [qcow-backing=FILE] [qcow-password=SECRET|-|-FD|+FILE]
 *
 * Each connection opens its own libqcowkit handle over the plugin in
 * .prepare.  Handles are thread-safe, so the filter is as parallel as the
 * plugin allows.  Writes: put --filter=cow on top.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow-filter.h"

static char *backing_path; /* qcow-backing=, absolute */
static char *password;     /* qcow-password=, after nbdkit's rules */

static void qcow_unload(void)
{
    free(backing_path);
    if (password) {
        /* volatile: a store the compiler may not drop before free. */
        for (volatile char *p = password; *p; p++)
            *p = 0;
        free(password);
    }
}

static int qcow_config(nbdkit_next_config *next, nbdkit_backend *nxdata,
                       const char *key, const char *value)
{
    if (strcmp(key, "qcow-backing") == 0) {
        free(backing_path);
        backing_path = nbdkit_absolute_path(value);
        return backing_path ? 0 : -1;
    }
    if (strcmp(key, "qcow-password") == 0) {
        free(password);
        password = NULL;
        return nbdkit_read_password(value, &password);
    }
    return next(nxdata, key, value);
}

#define qcow_config_help                                                       \
    "qcow-backing=FILE     Local backing file of the image.\n"                 \
    "qcow-password=SECRET  Password of an encrypted image (-, -FD, +FILE)."

static int qcow_thread_model(void)
{
    return NBDKIT_THREAD_MODEL_PARALLEL;
}

static void *qcow_open(nbdkit_next_open *next, nbdkit_context *context,
                       int readonly, const char *exportname, int is_tls)
{
    struct qf_conn *conn;

    (void)readonly, (void)is_tls;
    /* The plugin only ever serves reads. */
    if (next(context, 1, exportname) == -1)
        return NULL;
    conn = calloc(1, sizeof *conn);
    if (!conn)
        nbdkit_error("calloc: %m");
    return conn;
}

static void qcow_close(void *handle)
{
    struct qf_conn *conn = handle;

    qcowkit_close(conn->backing);
    qcowkit_close(conn->img);
    qcowkit_io_close(conn->io);
    free(conn);
}

static void key_opts(struct qcowkit_open_opts *opts, unsigned flags)
{
    qcowkit_open_opts_init(opts);
    opts->flags = QCOWKIT_OPEN_RDONLY | flags;
    if (password) {
        opts->key = (const uint8_t *)password;
        opts->key_len = strlen(password);
    }
}

/* Refuse what cannot be read right: a chain or a key left out. */
static int check_image(struct qcowkit_image *img, const char *name,
                       int want_backing)
{
    struct qcowkit_info info;
    int ret;

    qcowkit_info_init(&info);
    ret = qcowkit_get_info(img, &info);
    if (ret < 0)
        return qf_fail(ret, NULL);
    if (info.crypt_method != QCOWKIT_CRYPT_NONE && !password) {
        nbdkit_error("%s is encrypted: give its password as qcow-password=",
                     name);
        return -1;
    }
    if (!want_backing)
        return 0;
    if (info.backing_file[0] && !backing_path) {
        nbdkit_error("%s names the backing file '%s': give a local copy of "
                     "it as qcow-backing=FILE",
                     name, info.backing_file);
        return -1;
    }
    if (!info.backing_file[0] && backing_path) {
        nbdkit_error("%s names no backing file, but qcow-backing=%s is set",
                     name, backing_path);
        return -1;
    }
    return 0;
}

static int open_backing(struct qf_conn *conn)
{
    struct qcowkit_open_opts opts;
    struct qcowkit_info info;
    int ret;

    key_opts(&opts, 0);
    ret = qcowkit_open(backing_path, &opts, &conn->backing);
    if (ret == 0 && check_image(conn->backing, backing_path, 0) < 0)
        return -1;
    qcowkit_info_init(&info);
    if (ret == 0)
        ret = qcowkit_get_info(conn->backing, &info);
    if (ret < 0)
        return qf_fail(ret, NULL);
    conn->backing_size = info.virtual_size;
    return 0;
}

static int qcow_prepare(nbdkit_next *next, void *handle, int readonly)
{
    struct qf_conn *conn = handle;
    struct qcowkit_open_opts opts;
    struct qcowkit_info info;
    int ret;

    (void)readonly;
    conn->next = next;
    if (qf_backend_open(conn) < 0)
        return -1;
    key_opts(&opts, QCOWKIT_OPEN_NO_BACKING);
    opts.format = QCOWKIT_FORMAT_QCOW;
    ret = qcowkit_open_io(conn->io, "image", &opts, &conn->img);
    if (ret < 0)
        return qf_fail(ret, NULL);
    if (check_image(conn->img, "the image", 1) < 0)
        return -1;
    if (backing_path && open_backing(conn) < 0)
        return -1;
    qcowkit_info_init(&info);
    ret = qcowkit_get_info(conn->img, &info);
    if (ret < 0)
        return qf_fail(ret, NULL);
    conn->size = info.virtual_size;
    return 0;
}

static int64_t qcow_get_size(nbdkit_next *next, void *handle)
{
    (void)next;
    return (int64_t)((struct qf_conn *)handle)->size;
}

/* Any alignment reads right; clusters are what the image stores. */
static int qcow_block_size(nbdkit_next *next, void *handle, uint32_t *minimum,
                           uint32_t *preferred, uint32_t *maximum)
{
    (void)next, (void)handle;
    *minimum = 1;
    *preferred = 4096;
    *maximum = 0xffffffff;
    return 0;
}

static int read_only(nbdkit_next *next, void *handle)
{
    (void)next, (void)handle;
    return 0;
}

static int always(nbdkit_next *next, void *handle)
{
    (void)next, (void)handle;
    return 1;
}

static int qcow_pread(nbdkit_next *next, void *handle, void *buf,
                      uint32_t count, uint64_t offset, uint32_t flags, int *err)
{
    (void)next, (void)flags;
    return qf_read(handle, buf, count, offset, err);
}

static int qcow_extents(nbdkit_next *next, void *handle, uint32_t count,
                        uint64_t offset, uint32_t flags,
                        struct nbdkit_extents *extents, int *err)
{
    (void)next;
    return qf_extents(handle, count, offset, flags, extents, err);
}

static struct nbdkit_filter filter = {
    .name = "qcow",
    .longname = "nbdkit qcow (version 1) filter, by qcowkit",
    .unload = qcow_unload,
    .config = qcow_config,
    .config_help = qcow_config_help,
    .thread_model = qcow_thread_model,
    .open = qcow_open,
    .close = qcow_close,
    .prepare = qcow_prepare,
    .get_size = qcow_get_size,
    .block_size = qcow_block_size,
    .can_write = read_only,
    .can_flush = read_only,
    .can_trim = read_only,
    .can_zero = read_only,
    .can_fast_zero = read_only,
    .can_fua = read_only,
    .can_cache = read_only,
    .can_extents = always,
    /* Every connection reads the same unchanging bytes. */
    .can_multi_conn = always,
    .pread = qcow_pread,
    .extents = qcow_extents,
};

NBDKIT_REGISTER_FILTER(filter)
