/* cli-open.c - opening images and their backing chains. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "Could not open 'ARG': MSG", the message of qemu-img. */
static void open_error(const struct cli_image_spec *spec, const char *msg)
{
    cli_error("Could not open '%s': %s", spec->arg, msg);
}

/*
 * The library's message for a failed open of path: it names the file
 * (made sure of here), or with --image-opts (spec) follows qemu-img's
 * "Could not open" form.
 */
static void open_failed(const char *path, const struct cli_image_spec *spec,
                        int err)
{
    const char *msg = qcowkit_errmsg();

    if (spec && spec->image_opts && msg && *msg)
        open_error(spec, msg);
    else if (msg && *msg && strstr(msg, path) == msg)
        cli_error("%s", msg);
    else if (msg && *msg)
        cli_error("%s: %s", path, msg);
    else
        cli_error("%s: %s", path, strerror(-err));
}

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
        open_failed(path, NULL, err);
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

/* The keys named by spec, and why each failed (NULL if found or none). */
struct spec_keys {
    const uint8_t *key, *bkey;
    size_t key_len, bkey_len;
    const char *why, *bwhy;
};

/* Look spec's secrets up; qcowkit takes one key for the whole chain. */
static int find_keys(const struct cli_image_spec *spec, struct spec_keys *k)
{
    memset(k, 0, sizeof *k);
    if (spec->key_secret)
        cli_secret_get(spec->key_secret, &k->key, &k->key_len, &k->why);
    if (spec->backing_key_secret)
        cli_secret_get(spec->backing_key_secret, &k->bkey, &k->bkey_len,
                       &k->bwhy);
    if (k->key && k->bkey &&
        (k->key_len != k->bkey_len ||
         memcmp(k->key, k->bkey, k->key_len) != 0)) {
        open_error(spec, "qcowkit takes one key for a whole backing "
                         "chain: encrypt.key-secret and "
                         "backing.encrypt.key-secret must hold the same "
                         "password");
        return -ENOTSUP;
    }
    if (!k->key && !spec->key_secret && k->bkey) {
        k->key = k->bkey;
        k->key_len = k->bkey_len;
    }
    return 0;
}

/* encrypt.format must match the header, as QEMU checks it. */
static int check_encrypt_format(const struct cli_image_spec *spec,
                                const struct qcowkit_info *info)
{
    char msg[256];

    if (!spec->encrypt_format)
        return 0;
    if (info->format == QCOWKIT_FORMAT_QCOW && info->crypt_method &&
        strcmp(spec->encrypt_format, "aes") != 0) {
        snprintf(msg, sizeof msg,
                 "Header reported 'aes' encryption format but options "
                 "specify '%s'",
                 spec->encrypt_format);
        open_error(spec, msg);
        return -EINVAL;
    }
    if (!info->crypt_method) {
        snprintf(msg, sizeof msg,
                 "No encryption in image header, but options specified "
                 "format '%s'",
                 spec->encrypt_format);
        open_error(spec, msg);
        return -EINVAL;
    }
    return 0;
}

/* An encrypted chain needs its key: a missing secret, or none given. */
static int check_chain_key(const struct cli_image_spec *spec,
                           const struct spec_keys *k, unsigned cli_flags,
                           struct qcowkit_image *img)
{
    char msg[4200];

    if ((cli_flags & CLI_OPEN_NO_KEY) || !cli_chain_encrypted(img))
        return 0;
    if (k->why || (k->bwhy && !k->key)) {
        open_error(spec, k->why ? k->why : k->bwhy);
        return -ENOENT;
    }
    if (!k->key && (cli_flags & CLI_OPEN_NEED_KEY)) {
        snprintf(msg, sizeof msg,
                 "Parameter 'encrypt.key-secret' is required for cipher "
                 "(the image is encrypted: give --object "
                 "secret,id=ID,data=PASSWORD --image-opts "
                 "driver=qcow,file.filename=%s,encrypt.key-secret=ID)",
                 spec->filename);
        open_error(spec, msg);
        return -EACCES;
    }
    return 0;
}

int cli_open_spec(const struct cli_image_spec *spec, unsigned flags,
                  enum qcowkit_format backing_format, unsigned cli_flags,
                  struct qcowkit_image **img)
{
    struct qcowkit_open_opts o;
    struct spec_keys k;
    struct qcowkit_info info;
    int err;

    *img = NULL;
    memset(&k, 0, sizeof k);
    if ((flags & QCOWKIT_OPEN_FORCE_SHARE) && (flags & QCOWKIT_OPEN_RDWR)) {
        open_error(spec, "force-share=on can only be used with read-only "
                         "images");
        return -EINVAL;
    }
    if (!(cli_flags & CLI_OPEN_NO_KEY)) {
        err = find_keys(spec, &k);
        if (err < 0)
            return err;
    }
    qcowkit_open_opts_init(&o);
    o.flags = flags;
    o.format = spec->format;
    o.backing_format = backing_format;
    o.key = k.key;
    o.key_len = k.key_len;
    err = qcowkit_open(spec->filename, &o, img);
    if (err < 0) {
        open_failed(spec->filename, spec, err);
        *img = NULL;
        return err;
    }
    err = cli_get_info(*img, &info);
    if (err < 0)
        cli_lib_error(err, spec->filename);
    if (err == 0)
        err = check_encrypt_format(spec, &info);
    if (err == 0)
        err = check_chain_key(spec, &k, cli_flags, *img);
    if (err == 0)
        return 0;
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

int cli_create(const char *path, const struct qcowkit_create_opts *co)
{
    int err = qcowkit_create(path, co, QCOWKIT_IO_TRUNC);

    if (err < 0) {
        cli_lib_error(err, NULL);
        return -1;
    }
    return 0;
}
