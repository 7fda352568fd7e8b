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

/* Everything the mount holds, released by mount_end(). */
struct mount_state {
    struct cli_common co;
    const char *file, *mountpoint, *pid_arg;
    enum qcowkit_format format;
    bool foreground;
    struct fuse_args args;
    struct fuse_disk d;
    struct fuse *fuse;
    char *image_path, *mnt_abs, *pid_path, *mount_opts, *fsname;
    bool mounted, pid_written;
    int notify_fd;
};

enum { OPT_PID_FILE = 256 };

/* One option: CLI_NEXT_OPTION, the exit code, or -ENOMEM. */
static int mount_option(struct mount_state *m, char **argv, int c)
{
    switch (c) {
    case 'r':
        m->d.read_only = true;
        return CLI_NEXT_OPTION;
    case 'o':
        if (fuse_opt_add_arg(&m->args, "-o") != 0 ||
            fuse_opt_add_arg(&m->args, optarg) != 0)
            return -ENOMEM;
        return CLI_NEXT_OPTION;
    case 'F':
        m->foreground = true;
        return CLI_NEXT_OPTION;
    case OPT_PID_FILE:
        m->pid_arg = optarg;
        return CLI_NEXT_OPTION;
    case 'h':
        usage();
        return 0;
    default:
        return cli_common_option(&m->co, argv, c);
    }
}

/* Returns CLI_NEXT_OPTION to mount, -ENOMEM, or the exit code. */
static int parse_mount_args(int argc, char **argv, struct mount_state *m)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_FORMAT,
        {"read-only", no_argument, NULL, 'r'},
        CLI_LONGOPT_FORCE_SHARE,
        CLI_LONGOPT_OBJECT,
        CLI_LONGOPT_IMAGE_OPTS,
        {"options", required_argument, NULL, 'o'},
        {"foreground", no_argument, NULL, 'F'},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {NULL, 0, NULL, 0},
    };
    int c, ret;

    cli_common_init(&m->co, "mount");
    optind = 0;
    opterr = 0;
    if (fuse_opt_add_arg(&m->args, CLI_NAME) != 0)
        return -ENOMEM;
    while ((c = getopt_long(argc, argv, ":f:rUo:Fh", longopts, NULL)) != -1)
        if ((ret = mount_option(m, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    if (argc - optind != 2)
        return cli_usage_error("mount", "Expecting an image file name and a "
                                        "mountpoint");
    m->file = argv[optind];
    m->mountpoint = argv[optind + 1];
    return cli_parse_format(m->co.fmt, &m->format) < 0 ? 1 : CLI_NEXT_OPTION;
}

/* A regular file or a folder; its absolute name (libfuse unmounts by
 * name, and we leave the folder we start in). */
static int check_mountpoint(struct mount_state *m)
{
    struct stat st;

    if (stat(m->mountpoint, &st) != 0) {
        cli_error("%s: %s", m->mountpoint, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        m->d.dir_mode = true;
    else if (!S_ISREG(st.st_mode)) {
        cli_error("%s: the mountpoint must be a regular file or a folder",
                  m->mountpoint);
        return -1;
    }
    m->mnt_abs = realpath(m->mountpoint, NULL);
    if (!m->mnt_abs) {
        cli_error("%s: %s", m->mountpoint, strerror(errno));
        return -1;
    }
    return 0;
}

/* Open the image into m->d. */
static int open_disk(struct mount_state *m)
{
    struct fuse_disk *d = &m->d;
    struct qcowkit_info info;
    unsigned flags;
    int err;

    flags = (d->read_only ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR) |
            (m->co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0);
    if (cli_open_image(m->file, m->co.image_opts, m->format, flags,
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &d->img,
                       &m->image_path) < 0)
        return -1;
    err = cli_get_info(d->img, &info);
    if (err < 0) {
        cli_lib_error(err, m->image_path);
        return -1;
    }
    d->size = info.virtual_size;
    d->keep_cache = !m->co.force_share;
    d->verbose = m->foreground;
    d->uid = getuid();
    d->gid = getgid();
    /* Opened before mounting: the mount may cover the image file itself,
     * as qemu's FUSE export allows. */
    d->stat_fd = open(m->image_path, O_PATH | O_CLOEXEC);
    if (d->stat_fd < 0) {
        cli_error("%s: %s", m->image_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Our mount options first, so that the user's -o can override. */
static int add_mount_options(struct mount_state *m)
{
    char *abs_image = absolute(m->image_path);

    if (!abs_image)
        return -ENOMEM;
    m->fsname = malloc(strlen(abs_image) + sizeof "fsname=");
    if (m->fsname)
        sprintf(m->fsname, "fsname=%s", abs_image);
    free(abs_image);
    if (!m->fsname ||
        fuse_opt_add_opt_escaped(&m->mount_opts, m->fsname) != 0 ||
        fuse_opt_add_opt(&m->mount_opts, "subtype=qcowkit") != 0 ||
        (m->d.read_only && fuse_opt_add_opt(&m->mount_opts, "ro") != 0) ||
        fuse_opt_insert_arg(&m->args, 1, "-o") != 0 ||
        fuse_opt_insert_arg(&m->args, 2, m->mount_opts) != 0)
        return -ENOMEM;
    return 0;
}

/* Mount, and set the signals that end the loop. */
static int mount_disk(struct mount_state *m)
{
    fuse_set_log_func(fuse_log_fn);
    m->fuse = fuse_new(&m->args, &fuse_disk_ops, sizeof fuse_disk_ops, &m->d);
    if (!m->fuse) {
        fuse_failed("invalid FUSE options", "fuse_new failed");
        return -1;
    }
    if (fuse_mount(m->fuse, m->mnt_abs) != 0) {
        char what[PATH_MAX + 32];
        snprintf(what, sizeof what, "%s: cannot mount", m->mountpoint);
        fuse_failed(what, "mount failed");
        return -1;
    }
    m->mounted = true;
    /* SIGTERM, SIGINT and SIGHUP end the loop: we then unmount. */
    if (fuse_set_signal_handlers(fuse_get_session(m->fuse)) != 0) {
        fuse_failed("cannot set signal handlers", "sigaction failed");
        return -1;
    }
    return 0;
}

/* Go to the background, write the pid file, serve; the exit code. */
static int serve(struct mount_state *m)
{
    int err;

    if (!m->foreground) {
        m->notify_fd = daemonize();
        if (m->notify_fd < 0) {
            cli_error("cannot go to the background: %s",
                      strerror(-m->notify_fd));
            return 1;
        }
    }
    if (m->pid_path) {
        err = write_pid_file(m->pid_path);
        if (err < 0) {
            cli_error("%s: cannot write the pid file: %s", m->pid_arg,
                      strerror(-err));
            return 1;
        }
        m->pid_written = true;
    }
    if (m->notify_fd >= 0) {
        daemon_ready(m->notify_fd);
        m->notify_fd = -1;
    }
    fuse_msg_set_direct(true);
    err = fuse_loop_mt(m->fuse, 0);
    fuse_msg_set_direct(false);
    /* Negative: the loop failed.  0 after an unmount, the signal number
     * after a signal: both end the mount as asked. */
    if (err < 0)
        cli_error("%s: FUSE loop failed: %s", m->mountpoint, strerror(-err));
    return err < 0 ? 1 : 0;
}

/* Unmount, close the image (which flushes it) and let everything go. */
static int mount_end(struct mount_state *m, int ret)
{
    int err;

    if (m->fuse) {
        fuse_remove_signal_handlers(fuse_get_session(m->fuse));
        if (m->mounted)
            fuse_unmount(m->fuse);
        fuse_destroy(m->fuse);
    }
    if (m->d.img) {
        /* Flushes: every write acknowledged to the kernel is durable. */
        err = qcowkit_close(m->d.img);
        if (err < 0) {
            cli_lib_error(err, m->image_path);
            ret = 1;
        }
    }
    if (m->d.stat_fd >= 0)
        close(m->d.stat_fd);
    if (m->pid_written)
        unlink(m->pid_path);
    /* A child that failed before it was ready: its parent exits 1. */
    if (m->notify_fd >= 0)
        close(m->notify_fd);
    fuse_opt_free_args(&m->args);
    free(m->mount_opts);
    free(m->fsname);
    free(m->image_path);
    free(m->mnt_abs);
    free(m->pid_path);
    return ret;
}

int cmd_mount(int argc, char **argv)
{
    struct mount_state m;
    int ret;

    memset(&m, 0, sizeof m);
    m.args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    m.d.stat_fd = -1;
    m.notify_fd = -1;
    ret = parse_mount_args(argc, argv, &m);
    if (ret == CLI_NEXT_OPTION) {
        ret = 1;
        if (check_mountpoint(&m) < 0)
            return mount_end(&m, 1);
        if (m.pid_arg && !(m.pid_path = absolute(m.pid_arg)))
            ret = -ENOMEM;
        else if (open_disk(&m) < 0)
            return mount_end(&m, 1);
        else if ((ret = add_mount_options(&m)) == 0 && mount_disk(&m) == 0)
            ret = serve(&m);
        else if (ret == 0)
            ret = 1;
    }
    if (ret == -ENOMEM) {
        cli_error("out of memory");
        ret = 1;
    }
    return mount_end(&m, ret);
}
