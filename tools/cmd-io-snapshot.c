/* cmd-io-snapshot.c - qcowkit io -s: writes go to a temporary overlay. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd-io.h"

/*
 * An empty qcow file at a new name in $TMPDIR (default /tmp), of the
 * image's size, backed by the image at abs_path.  *tmp gets the name.
 */
static int make_overlay(const char *abs_path, const struct qcowkit_info *info,
                        char **tmp)
{
    const char *dir = getenv("TMPDIR");
    struct qcowkit_create_opts co;
    int fd, err;

    if (!dir || !*dir)
        dir = "/tmp";
    if (asprintf(tmp, "%s/qcowkit-snapshot.XXXXXX", dir) < 0) {
        *tmp = NULL;
        cli_error("out of memory");
        return -ENOMEM;
    }
    fd = mkstemp(*tmp);
    if (fd < 0) {
        err = -errno;
        cli_error("%s: cannot create the snapshot overlay: %s", *tmp,
                  strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return err;
    }
    close(fd);
    qcowkit_create_opts_init(&co);
    co.size = info->virtual_size;
    co.backing_file = abs_path;
    co.cluster_size = 65536; /* as QEMU's qcow2 overlay */
    err = qcowkit_create(*tmp, &co, QCOWKIT_IO_TRUNC);
    if (err < 0)
        cli_lib_error(err, NULL);
    return err;
}

/*
 * Open the overlay over the image spec names, then unlink it: the open
 * handle keeps it, and nothing is left behind however the command ends.
 * Signals that would end it are held back until the name is gone.
 */
static int open_overlay(const struct cli_image_spec *spec, const char *abs,
                        const struct qcowkit_info *info,
                        struct qcowkit_image **img)
{
    struct cli_image_spec ov;
    sigset_t stop, old;
    char *tmp = NULL;
    int err;

    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    sigaddset(&stop, SIGQUIT);
    sigprocmask(SIG_BLOCK, &stop, &old);
    err = make_overlay(abs, info, &tmp);
    if (err == 0) {
        /* The key of the image, if any, reaches it through the chain. */
        memset(&ov, 0, sizeof ov);
        ov.arg = spec->arg;
        ov.filename = tmp;
        ov.format = QCOWKIT_FORMAT_QCOW;
        ov.key_secret =
            spec->key_secret ? spec->key_secret : spec->backing_key_secret;
        err = cli_open_spec(&ov, QCOWKIT_OPEN_RDWR, info->format,
                            CLI_OPEN_NEED_KEY, img);
    }
    if (tmp)
        unlink(tmp);
    free(tmp);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return err;
}

/*
 * qemu-io -s (--snapshot): writes go to a temporary qcow overlay backed
 * by the image (its absolute path, its format); the image itself is only
 * read, with a shared lock, and stays as it was.
 */
int io_open_snapshot(const char *arg, bool image_opts,
                     enum qcowkit_format format, struct qcowkit_image **img,
                     bool *encrypted)
{
    struct cli_image_spec spec;
    struct qcowkit_image *base;
    struct qcowkit_info info;
    char *abs = NULL;
    int err;

    if (cli_image_spec_parse(arg, image_opts, format, &spec) < 0)
        return -EINVAL;
    err = cli_open_spec(&spec, QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_AUTO,
                        CLI_OPEN_NEED_KEY, &base);
    if (err == 0) {
        err = cli_get_info(base, &info);
        if (err < 0)
            cli_lib_error(err, spec.filename);
        qcowkit_close(base);
    }
    if (err == 0 && !(abs = realpath(spec.filename, NULL))) {
        err = -errno;
        cli_error("%s: %s", spec.filename, strerror(errno));
    }
    if (err == 0)
        err = open_overlay(&spec, abs, &info, img);
    *encrypted = err == 0 && info.crypt_method;
    free(abs);
    cli_image_spec_free(&spec);
    return err;
}
