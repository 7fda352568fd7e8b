/* cli-open.c - opening images and their backing chains. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_open(const char *path, enum qcowkit_format format, unsigned flags,
             enum qcowkit_format backing_format, struct qcowkit_image **img)
{
    struct qcowkit_open_opts o;
    int err;

    qcowkit_open_opts_init(&o);
    o.flags = flags;
    o.format = format;
    o.backing_format = backing_format;
    err = qcowkit_open(path, &o, img);
    if (err < 0) {
        const char *msg = qcowkit_errmsg();
        /* The library's message names the file; make sure it does. */
        if (msg && *msg && strstr(msg, path) == msg)
            cli_error("%s", msg);
        else if (msg && *msg)
            cli_error("%s: %s", path, msg);
        else
            cli_error("%s: %s", path, strerror(-err));
        *img = NULL;
    }
    return err;
}

int cli_get_info(struct qcowkit_image *img, struct qcowkit_info *info)
{
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
    return qcowkit_get_info(img, info);
}

uint64_t cli_image_size(struct qcowkit_image *img)
{
    struct qcowkit_info info;

    if (cli_get_info(img, &info) < 0)
        return 0;
    return info.virtual_size;
}

/* ---------------------------------------------------------------- backing */

char *cli_backing_path(const char *image, const char *backing)
{
    const char *slash = strrchr(image, '/');
    size_t dir_len;
    char *path;

    if (backing[0] == '/' || !slash)
        return strdup(backing);
    dir_len = (size_t)(slash - image) + 1;
    path = malloc(dir_len + strlen(backing) + 1);
    if (path) {
        memcpy(path, image, dir_len);
        strcpy(path + dir_len, backing);
    }
    return path;
}

bool cli_chain_encrypted(struct qcowkit_image *img)
{
    for (; img; img = qcowkit_backing(img)) {
        struct qcowkit_info info;
        if (cli_get_info(img, &info) == 0 && info.crypt_method)
            return true;
    }
    return false;
}

/* "Could not open 'ARG': MSG", the message of qemu-img. */
static void open_error(const struct cli_image_spec *spec, const char *msg)
{
    cli_error("Could not open '%s': %s", spec->arg, msg);
}

int cli_open_spec(const struct cli_image_spec *spec, unsigned flags,
                  enum qcowkit_format backing_format, unsigned cli_flags,
                  struct qcowkit_image **img)
{
    struct qcowkit_open_opts o;
    const uint8_t *key = NULL, *bkey = NULL;
    size_t key_len = 0, bkey_len = 0;
    const char *why = NULL, *bwhy = NULL;
    struct qcowkit_info info;
    int err;

    *img = NULL;
    if ((flags & QCOWKIT_OPEN_FORCE_SHARE) && (flags & QCOWKIT_OPEN_RDWR)) {
        open_error(spec, "force-share=on can only be used with read-only "
                         "images");
        return -EINVAL;
    }
    if (!(cli_flags & CLI_OPEN_NO_KEY)) {
        if (spec->key_secret)
            cli_secret_get(spec->key_secret, &key, &key_len, &why);
        if (spec->backing_key_secret)
            cli_secret_get(spec->backing_key_secret, &bkey, &bkey_len, &bwhy);
        if (key && bkey &&
            (key_len != bkey_len || memcmp(key, bkey, key_len) != 0)) {
            open_error(spec, "qcowkit takes one key for a whole backing "
                             "chain: encrypt.key-secret and "
                             "backing.encrypt.key-secret must hold the same "
                             "password");
            return -ENOTSUP;
        }
        if (!key && !spec->key_secret && bkey) {
            key = bkey;
            key_len = bkey_len;
        }
    }
    qcowkit_open_opts_init(&o);
    o.flags = flags;
    o.format = spec->format;
    o.backing_format = backing_format;
    o.key = key;
    o.key_len = key_len;
    err = qcowkit_open(spec->filename, &o, img);
    if (err < 0) {
        const char *msg = qcowkit_errmsg();
        const char *path = spec->filename;
        if (spec->image_opts && msg && *msg)
            open_error(spec, msg);
        else if (msg && *msg && strstr(msg, path) == msg)
            cli_error("%s", msg);
        else if (msg && *msg)
            cli_error("%s: %s", path, msg);
        else
            cli_error("%s: %s", path, strerror(-err));
        *img = NULL;
        return err;
    }
    err = cli_get_info(*img, &info);
    if (err < 0) {
        cli_lib_error(err, spec->filename);
        goto fail;
    }
    if (spec->encrypt_format) {
        char msg[256];
        if (info.format == QCOWKIT_FORMAT_QCOW && info.crypt_method &&
            strcmp(spec->encrypt_format, "aes") != 0) {
            snprintf(msg, sizeof msg,
                     "Header reported 'aes' encryption format but options "
                     "specify '%s'",
                     spec->encrypt_format);
            open_error(spec, msg);
            err = -EINVAL;
            goto fail;
        }
        if (!info.crypt_method) {
            snprintf(msg, sizeof msg,
                     "No encryption in image header, but options specified "
                     "format '%s'",
                     spec->encrypt_format);
            open_error(spec, msg);
            err = -EINVAL;
            goto fail;
        }
    }
    if (!(cli_flags & CLI_OPEN_NO_KEY) && cli_chain_encrypted(*img)) {
        if (why || (bwhy && !key)) {
            open_error(spec, why ? why : bwhy);
            err = -ENOENT;
            goto fail;
        }
        if (!key && (cli_flags & CLI_OPEN_NEED_KEY)) {
            char msg[4200];
            snprintf(msg, sizeof msg,
                     "Parameter 'encrypt.key-secret' is required for cipher "
                     "(the image is encrypted: give --object "
                     "secret,id=ID,data=PASSWORD --image-opts "
                     "driver=qcow,file.filename=%s,encrypt.key-secret=ID)",
                     spec->filename);
            open_error(spec, msg);
            err = -EACCES;
            goto fail;
        }
    }
    return 0;
fail:
    qcowkit_close(*img);
    *img = NULL;
    return err;
}

int cli_open_image(const char *arg, bool image_opts, enum qcowkit_format format,
                   unsigned flags, enum qcowkit_format backing_format,
                   unsigned cli_flags, struct qcowkit_image **img, char **path)
{
    struct cli_image_spec spec;
    int err;

    *img = NULL;
    if (path)
        *path = NULL;
    if (cli_image_spec_parse(arg, image_opts, format, &spec) < 0)
        return -EINVAL;
    err = cli_open_spec(&spec, flags, backing_format, cli_flags, img);
    if (err == 0 && path) {
        *path = spec.filename;
        spec.filename = NULL;
    }
    cli_image_spec_free(&spec);
    return err;
}
