/* mount.c - qcowkit mount: the guest disk of an image as one regular file
 * in a FUSE mount, as qemu-storage-daemon's FUSE export or nbdfuse.
 *
 * Life of the command: open the image (locked as QEMU locks it), mount,
 * go to the background (unless --foreground), write the pid file, serve
 * on libfuse's multithreaded loop until `fusermount3 -u MOUNTPOINT`,
 * SIGTERM, SIGINT or SIGHUP, then unmount, close the image (which
 * flushes it) and remove the pid file.  The exit code is 0 when the image
 * closed cleanly. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fuse-disk.h"

/* ------------------------------------------------------ libfuse's messages */

/*
 * Until the mount is served, libfuse's messages are kept (the last line)
 * and become part of our one-line error; afterwards they are printed as
 * our own lines.  libfuse may build one line from several calls.
 */
static char fuse_line[512]; /* the line being built */
static char fuse_msg[512];  /* the last complete line */
static bool fuse_msg_direct;
/* libfuse may log from its worker threads. */
static pthread_mutex_t fuse_msg_lock = PTHREAD_MUTEX_INITIALIZER;

static void fuse_line_done(void)
{
    const char *msg = fuse_line;
    size_t n = strlen(fuse_line);

    while (n > 0 && (fuse_line[n - 1] == '\n' || fuse_line[n - 1] == ' '))
        fuse_line[--n] = '\0';
    if (strncmp(msg, "fuse: ", 6) == 0)
        msg += 6;
    if (*msg) {
        if (fuse_msg_direct)
            cli_error("fuse: %s", msg);
        else
            snprintf(fuse_msg, sizeof fuse_msg, "%s", msg);
    }
    fuse_line[0] = '\0';
}

static void fuse_log_fn(enum fuse_log_level level, const char *fmt, va_list ap)
{

    size_t n;

    if (level > FUSE_LOG_WARNING)
        return;
    pthread_mutex_lock(&fuse_msg_lock);
    n = strlen(fuse_line);
    vsnprintf(fuse_line + n, sizeof fuse_line - n, fmt, ap);
    n = strlen(fuse_line);
    if (n > 0 && fuse_line[n - 1] == '\n')
        fuse_line_done();
    pthread_mutex_unlock(&fuse_msg_lock);
}

static void fuse_msg_set_direct(bool direct)
{
    pthread_mutex_lock(&fuse_msg_lock);
    fuse_msg_direct = direct;
    pthread_mutex_unlock(&fuse_msg_lock);
}

/* "what: <libfuse's reason>" as one line. */
static void fuse_failed(const char *what, const char *fallback)
{
    pthread_mutex_lock(&fuse_msg_lock);
    if (fuse_line[0])
        fuse_line_done();
    cli_error("%s: %s", what, fuse_msg[0] ? fuse_msg : fallback);
    fuse_msg[0] = '\0';
    pthread_mutex_unlock(&fuse_msg_lock);
}

/* ------------------------------------------------------------------ paths */

/* An absolute version of path (malloc'd), without resolving links. */
static char *absolute(const char *path)
{
    char cwd[PATH_MAX], *out;

    if (path[0] == '/')
        return strdup(path);
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    out = malloc(strlen(cwd) + strlen(path) + 2);
    if (out)
        sprintf(out, "%s/%s", cwd, path);
    return out;
}

/* Write our pid to path through a temporary file, so that a reader never
 * sees it half written. */
static int write_pid_file(const char *path)
{
    size_t len = strlen(path) + 8;
    char *tmp = malloc(len);
    FILE *f;
    int err = 0;

    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, len, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        err = -errno;
        free(tmp);
        return err;
    }
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0)
        err = -errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = -errno;
    if (err < 0)
        unlink(tmp);
    free(tmp);
    return err;
}

/* --------------------------------------------------------------- daemon */

/*
 * Go to the background: the parent waits until the child reports (one
 * byte on the pipe: 0 ready, else failed) and exits with 0 or 1, so that
 * when the command returns 0 the disk is mounted and the pid file
 * written.  Returns the write end of the pipe in the child.
 */
static int daemonize(void)
{
    int pipefd[2];
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -errno;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        int err = -errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return err;
    }
    if (pid > 0) {
        char status = 1;
        ssize_t n;

        close(pipefd[1]);
        do
            n = read(pipefd[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 && status == 0 ? 0 : 1);
    }
    close(pipefd[0]);
    setsid();
    return pipefd[1];
}

static void daemon_ready(int notify_fd)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    char status = 0;

    if (chdir("/") != 0) {
        /* not fatal: the mount works from any folder */
    }
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    if (write(notify_fd, &status, 1) != 1) {
        /* the parent is gone: nobody to tell */
    }
    close(notify_fd);
}

/* ----------------------------------------------------------------- main */

static void usage(void)
{
    printf("usage: %s %s\n"
           "\n"
           "Expose the guest disk of FILE as a regular file through FUSE.\n"
           "  MOUNTPOINT a regular file: it is mounted over and reads as the "
           "disk;\n"
           "             a folder: the disk is MOUNTPOINT/" FUSE_DISK_NAME "\n"
           "  -f FMT     image format, qcow or raw (default: probed)\n"
           "  -r         read-only: writes and resizes fail with EROFS\n"
           "  -U         with -r: take no image locks (--force-share)\n"
           "  --object secret,id=ID,data=PW and --image-opts "
           "...,encrypt.key-secret=ID\n"
           "             open an encrypted image\n"
           "  -o OPTS    FUSE mount options, e.g. allow_other (repeatable)\n"
           "  -F, --foreground  stay in the foreground (default: background "
           "once mounted)\n"
           "  --pid-file=F      write the serving process's id to F once "
           "mounted\n"
           "\n"
           "Reads and writes go to the image at any offset and size; fsync "
           "and close\n"
           "after writing flush it.  truncate resizes it; O_TRUNC does not, "
           "and a write\n"
           "past the end fails with ENOSPC, as on a block device.  Unmount "
           "with\n"
           "'fusermount3 -u MOUNTPOINT' or SIGTERM: the image is flushed and "
           "closed and\n"
           "the command exits 0.  The image stays locked while mounted.\n",
           CLI_NAME, cli_usage("mount"));
}

int cmd_mount(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS, OPT_PID_FILE };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'f'},
        {"read-only", no_argument, NULL, 'r'},
        {"force-share", no_argument, NULL, 'U'},
        {"object", required_argument, NULL, OPT_OBJECT},
        {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
        {"options", required_argument, NULL, 'o'},
        {"foreground", no_argument, NULL, 'F'},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {NULL, 0, NULL, 0},
    };
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    struct fuse_disk d;
    struct qcowkit_info info;
    struct stat st;
    struct fuse *fuse = NULL;
    const char *fmt = NULL, *file, *mountpoint, *pid_arg = NULL;
    char *image_path = NULL, *mnt_abs = NULL, *pid_path = NULL;
    char *mount_opts = NULL, *fsname = NULL;
    enum qcowkit_format format;
    bool image_opts = false, force_share = false, foreground = false;
    bool mounted = false, pid_written = false;
    unsigned flags;
    int c, err, notify_fd = -1, ret = 1;

    memset(&d, 0, sizeof d);
    d.stat_fd = -1;
    optind = 0;
    opterr = 0;
    if (fuse_opt_add_arg(&args, CLI_NAME) != 0)
        goto oom;
    while ((c = getopt_long(argc, argv, ":f:rUo:Fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'r':
            d.read_only = true;
            break;
        case 'U':
            force_share = true;
            break;
        case 'o':
            if (fuse_opt_add_arg(&args, "-o") != 0 ||
                fuse_opt_add_arg(&args, optarg) != 0)
                goto oom;
            break;
        case 'F':
            foreground = true;
            break;
        case OPT_PID_FILE:
            pid_arg = optarg;
            break;
        case OPT_OBJECT:
            if (cli_object_add(optarg) < 0)
                goto out;
            break;
        case OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case 'h':
            usage();
            ret = 0;
            goto out;
        default:
            ret = cli_bad_option("mount", argv, c);
            goto out;
        }
    }
    if (argc - optind != 2) {
        ret = cli_usage_error("mount", "Expecting an image file name and a "
                                       "mountpoint");
        goto out;
    }
    file = argv[optind];
    mountpoint = argv[optind + 1];
    if (cli_parse_format(fmt, &format) < 0)
        goto out;

    if (stat(mountpoint, &st) != 0) {
        cli_error("%s: %s", mountpoint, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode))
        d.dir_mode = true;
    else if (!S_ISREG(st.st_mode)) {
        cli_error("%s: the mountpoint must be a regular file or a folder",
                  mountpoint);
        goto out;
    }
    /* libfuse unmounts by name, and we leave the folder we start in. */
    mnt_abs = realpath(mountpoint, NULL);
    if (!mnt_abs) {
        cli_error("%s: %s", mountpoint, strerror(errno));
        goto out;
    }
    if (pid_arg && !(pid_path = absolute(pid_arg)))
        goto oom;

    flags = (d.read_only ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR) |
            (force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0);
    if (cli_open_image(file, image_opts, format, flags, QCOWKIT_FORMAT_AUTO,
                       CLI_OPEN_NEED_KEY, &d.img, &image_path) < 0)
        goto out;
    err = cli_get_info(d.img, &info);
    if (err < 0) {
        cli_lib_error(err, image_path);
        goto out;
    }
    d.size = info.virtual_size;
    d.keep_cache = !force_share;
    d.verbose = foreground;
    d.uid = getuid();
    d.gid = getgid();
    /* Opened before mounting: the mount may cover the image file itself,
     * as qemu's FUSE export allows. */
    d.stat_fd = open(image_path, O_PATH | O_CLOEXEC);
    if (d.stat_fd < 0) {
        cli_error("%s: %s", image_path, strerror(errno));
        goto out;
    }

    /* Our mount options first, so that the user's -o can override. */
    {
        char *abs_image = absolute(image_path);
        if (!abs_image)
            goto oom;
        fsname = malloc(strlen(abs_image) + sizeof "fsname=");
        if (fsname)
            sprintf(fsname, "fsname=%s", abs_image);
        free(abs_image);
        if (!fsname)
            goto oom;
    }
    if (fuse_opt_add_opt_escaped(&mount_opts, fsname) != 0 ||
        fuse_opt_add_opt(&mount_opts, "subtype=qcowkit") != 0 ||
        (d.read_only && fuse_opt_add_opt(&mount_opts, "ro") != 0) ||
        fuse_opt_insert_arg(&args, 1, "-o") != 0 ||
        fuse_opt_insert_arg(&args, 2, mount_opts) != 0)
        goto oom;

    fuse_set_log_func(fuse_log_fn);
    fuse = fuse_new(&args, &fuse_disk_ops, sizeof fuse_disk_ops, &d);
    if (!fuse) {
        fuse_failed("invalid FUSE options", "fuse_new failed");
        goto out;
    }
    if (fuse_mount(fuse, mnt_abs) != 0) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "%s: cannot mount", mountpoint);
        fuse_failed(what, "mount failed");
        goto out;
    }
    mounted = true;
    /* SIGTERM, SIGINT and SIGHUP end the loop: we then unmount. */
    if (fuse_set_signal_handlers(fuse_get_session(fuse)) != 0) {
        fuse_failed("cannot set signal handlers", "sigaction failed");
        goto out;
    }
    if (!foreground) {
        notify_fd = daemonize();
        if (notify_fd < 0) {
            cli_error("cannot go to the background: %s", strerror(-notify_fd));
            goto out;
        }
    }
    if (pid_path) {
        err = write_pid_file(pid_path);
        if (err < 0) {
            cli_error("%s: cannot write the pid file: %s", pid_arg,
                      strerror(-err));
            goto out;
        }
        pid_written = true;
    }
    if (notify_fd >= 0) {
        daemon_ready(notify_fd);
        notify_fd = -1;
    }
    fuse_msg_set_direct(true);
    err = fuse_loop_mt(fuse, 0);
    fuse_msg_set_direct(false);
    /* Negative: the loop failed.  0 after an unmount, the signal number
     * after a signal: both end the mount as asked. */
    ret = err < 0 ? 1 : 0;
    if (err < 0)
        cli_error("%s: FUSE loop failed: %s", mountpoint, strerror(-err));
    goto out;

oom:
    cli_error("out of memory");
    ret = 1;
out:
    if (fuse) {
        fuse_remove_signal_handlers(fuse_get_session(fuse));
        if (mounted)
            fuse_unmount(fuse);
        fuse_destroy(fuse);
    }
    if (d.img) {
        /* Flushes: every write acknowledged to the kernel is durable. */
        err = qcowkit_close(d.img);
        if (err < 0) {
            cli_lib_error(err, image_path);
            ret = 1;
        }
    }
    if (d.stat_fd >= 0)
        close(d.stat_fd);
    if (pid_written)
        unlink(pid_path);
    /* A child that failed before it was ready: its parent exits 1. */
    if (notify_fd >= 0)
        close(notify_fd);
    fuse_opt_free_args(&args);
    free(mount_opts);
    free(fsname);
    free(image_path);
    free(mnt_abs);
    free(pid_path);
    return ret;
}
