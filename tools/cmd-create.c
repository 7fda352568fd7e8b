/* cmd-create.c - qcowkit create: a new qcow or raw image (qemu-img create). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

struct create_args {
    const char *file;
    enum qcowkit_format format;
    bool have_size;
    uint64_t size;
    struct cli_qcow_opts q;
    char *prealloc; /* preallocation=, as given */
    bool help;
};

static void print_create_options(enum qcowkit_format format)
{
    printf("Supported options:\n");
    if (format == QCOWKIT_FORMAT_QCOW) {
        printf("  backing_file=<str>     - File name of a base image\n"
               "  backing_fmt=<str>      - Image format of the base image\n"
               "  cluster_size=<size>    - qcow cluster size (512..65536, "
               "a power of two; qcowkit extension)\n"
               "  encrypt.format=<str>   - Encrypt the image, format choices: "
               "'aes'\n"
               "  encrypt.key-secret=<str> - ID of the secret that provides "
               "the AES encryption key\n"
               "  encryption=<bool (on/off)> - Encrypt the image with format "
               "'aes'. (Deprecated in favor of encrypt.format=aes)\n");
    }
    printf("  preallocation=<str>    - Preallocation mode (allowed values: "
           "off, falloc, full)\n"
           "  size=<size>            - Virtual disk size\n");
}

static int create_option(void *ctx, const char *key, const char *value)
{
    struct create_args *a = ctx;
    uint64_t v;
    const char *why;

    if (strcmp(key, "help") == 0 || strcmp(key, "?") == 0) {
        a->help = true;
        return 0;
    }
    if (!value) {
        cli_error("Invalid parameter '%s': expected %s=VALUE", key, key);
        return -1;
    }
    if (strcmp(key, "size") == 0) {
        if (cli_parse_size(value, INT64_MAX, &v, &why) < 0) {
            cli_error("Invalid size '%s' for parameter 'size': %s", value, why);
            return -1;
        }
        a->size = v;
        a->have_size = true;
        return 0;
    }
    if (strcmp(key, "preallocation") == 0) {
        /* Checked once the line "Formatting" is out, as QEMU does. */
        return cli_set_string(&a->prealloc, value);
    }
    if (a->format == QCOWKIT_FORMAT_QCOW) {
        int taken = cli_qcow_option(&a->q, key, value);
        if (taken != 0)
            return taken < 0 ? -1 : 0;
    }
    cli_error("Invalid parameter '%s'", key);
    return -1;
}

/* A backend that stores nothing, for a dry run of qcowkit_create_io(). */
static int null_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    (void)opaque;
    (void)offset;
    memset(buf, 0, count);
    return 0;
}

static int null_pwrite(void *opaque, const void *buf, size_t count,
                       uint64_t offset)
{
    (void)opaque;
    (void)buf;
    (void)count;
    (void)offset;
    return 0;
}

static int null_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int null_get_size(void *opaque, uint64_t *size)
{
    (void)opaque;
    *size = 0;
    return 0;
}

static int null_truncate(void *opaque, uint64_t size)
{
    (void)opaque;
    (void)size;
    return 0;
}

/*
 * qcowkit_create() empties an existing file before it checks the options,
 * so a refused create (size 0, too large, ...) would destroy the file it
 * was pointed at.  Check them on a backend that stores nothing first.
 */
static int dry_run(const char *path, const struct qcowkit_create_opts *co)
{
    static const struct qcowkit_io_ops null_ops = {
        .struct_size = sizeof null_ops,
        .pread = null_pread,
        .pwrite = null_pwrite,
        .flush = null_flush,
        .get_size = null_get_size,
        .truncate = null_truncate,
    };
    struct qcowkit_io *io;
    int err = qcowkit_io_new(&null_ops, NULL, path, &io);

    if (err == 0)
        err = qcowkit_create_io(io, path, co);
    qcowkit_io_close(io);
    if (err < 0)
        cli_lib_error(err, NULL);
    return err;
}

/*
 * Check the backing file as qemu-img does: it must open in the given
 * format, and it supplies the size when none was given.
 */
static int check_backing(struct create_args *a, bool unsafe)
{
    enum qcowkit_format bfmt;
    struct qcowkit_image *b;
    struct qcowkit_open_opts o;
    char *path;
    int err;

    if (strcmp(a->file, a->q.backing_file) == 0) {
        cli_error("%s: Error: Trying to create an image with the same "
                  "filename as the backing file",
                  a->file);
        return -1;
    }
    if (cli_parse_format(a->q.backing_fmt, &bfmt) < 0)
        return -1;
    if (unsafe) {
        if (!a->q.backing_fmt) {
            cli_error("%s: Backing file specified without backing format",
                      a->file);
            return -1;
        }
        return 0;
    }
    path = cli_backing_path(a->file, a->q.backing_file);
    if (!path) {
        cli_error("out of memory");
        return -1;
    }
    qcowkit_open_opts_init(&o);
    o.format = bfmt;
    o.flags = QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING;
    err = qcowkit_open(path, &o, &b);
    free(path);
    if (err < 0) {
        cli_lib_error(err, a->file);
        return -1;
    }
    if (!a->q.backing_fmt) {
        struct qcowkit_info info;
        if (cli_get_info(b, &info) == 0)
            cli_error("%s: Backing file specified without backing format "
                      "(detected format of %s)",
                      a->file, cli_format_name(info.format));
        else
            cli_error("%s: Backing file specified without backing format",
                      a->file);
        qcowkit_close(b);
        return -1;
    }
    if (!a->have_size) {
        a->size = cli_image_size(b);
        a->have_size = true;
    }
    qcowkit_close(b);
    return 0;
}

/* The operands: FILE [SIZE]; returns 0 or -1 after printing why. */
static int create_operands(int argc, char **argv, struct create_args *a)
{
    const char *why;

    if (optind >= argc) {
        cli_usage_error("create", "Expecting image file name");
        return -1;
    }
    a->file = argv[optind++];
    if (optind < argc) {
        if (cli_parse_size(argv[optind], INT64_MAX, &a->size, &why) < 0) {
            cli_error("Invalid image size specified: '%s': %s", argv[optind],
                      why);
            return -1;
        }
        a->have_size = true;
        optind++;
    }
    if (optind < argc) {
        cli_usage_error("create", "Unexpected argument: %s", argv[optind]);
        return -1;
    }
    return 0;
}

/*
 * Both passes over the options (-o once the format is known; several -o
 * accumulate), then the operands and the backing file.  Returns
 * CLI_NEXT_OPTION when the image is to be made, else the exit code.
 */
static int parse_create_args(int argc, char **argv, struct create_args *a,
                             struct cli_common *co)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_OBJECT,
        {NULL, 0, NULL, 0},
    };
    const char *opt_b = NULL, *opt_F = NULL;
    bool unsafe = false;
    int c, ret;

    cli_common_init(co, "create");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) !=
           -1) {
        if (c == 'b')
            opt_b = optarg;
        else if (c == 'F')
            opt_F = optarg;
        else if (c == 'u')
            unsafe = true;
        else if (c != 'o' &&
                 (ret = cli_common_option(co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    if (cli_parse_format(co->fmt ? co->fmt : "raw", &a->format) < 0)
        return 1;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) !=
           -1) {
        if (c == 'o' && cli_parse_opts(optarg, create_option, a) < 0)
            return 1;
    }
    if (a->help) {
        print_create_options(a->format);
        return 0;
    }
    if (create_operands(argc, argv, a) < 0)
        return 1;
    if (opt_b && cli_set_string(&a->q.backing_file, opt_b) < 0)
        return 1;
    if (opt_F && cli_set_string(&a->q.backing_fmt, opt_F) < 0)
        return 1;
    if (a->format == QCOWKIT_FORMAT_RAW && a->q.backing_file) {
        cli_error("%s: Backing file not supported for file format 'raw'",
                  a->file);
        return 1;
    }
    if (a->q.backing_file && check_backing(a, unsafe) < 0)
        return 1;
    return CLI_NEXT_OPTION;
}

/* qemu-img's "Formatting 'FILE', fmt=..." line. */
static void print_formatting(const struct create_args *a)
{
    printf("Formatting '%s', fmt=%s size=%llu", a->file,
           cli_format_name(a->format), (unsigned long long)a->size);
    if (a->q.backing_file)
        printf(" backing_file=%s", a->q.backing_file);
    if (a->q.backing_fmt)
        printf(" backing_fmt=%s", a->q.backing_fmt);
    if (a->q.encryption)
        printf(" encryption=%s", a->q.encryption);
    if (a->q.encrypt_format)
        printf(" encrypt.format=%s", a->q.encrypt_format);
    if (a->q.key_secret)
        printf(" encrypt.key-secret=%s", a->q.key_secret);
    if (a->q.cluster_size)
        printf(" cluster_size=%u", (unsigned)a->q.cluster_size);
    if (a->prealloc)
        printf(" preallocation=%s", a->prealloc);
    printf("\n");
    fflush(stdout);
}

/*
 * The preallocation mode, checked as QEMU 7.2 checks it: off, falloc and
 * full are taken (for qcow they change nothing: QEMU passes them to an
 * empty file before it writes the header).  QEMU also empties the file
 * when it refuses metadata; qcowkit refuses before touching it.  Returns
 * 0 or -1 after printing why.
 */
static int check_prealloc(const struct create_args *a)
{
    enum cli_prealloc mode = cli_parse_prealloc(a->prealloc);

    if (mode != CLI_PREALLOC_METADATA && mode != CLI_PREALLOC_UNKNOWN)
        return 0;
    if (mode == CLI_PREALLOC_UNKNOWN) {
        cli_error("%s: invalid parameter value: %s", a->file, a->prealloc);
        return -1;
    }
    cli_error("%s: Unsupported preallocation mode: metadata", a->file);
    return -1;
}

/* Write zeros over [0, size) of fd; returns 0 or a negative errno. */
static int write_zeros(int fd, uint64_t size)
{
    enum { CHUNK = 1 << 20 };
    char *zeros = calloc(1, CHUNK);
    uint64_t done = 0;
    int err = 0;

    if (!zeros)
        return -ENOMEM;
    while (done < size && err == 0) {
        size_t n = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
        ssize_t w = pwrite(fd, zeros, n, (off_t)done);

        if (w > 0)
            done += (uint64_t)w;
        else if (w < 0 && errno != EINTR)
            err = -errno;
        else if (w == 0)
            err = -EIO;
    }
    free(zeros);
    return err;
}

/* preallocation=falloc|full of a new raw file: reserve (falloc) or write
 * (full) every block, as QEMU's file driver does. */
static int preallocate_raw(const char *file, const char *mode)
{
    bool full = strcmp(mode, "full") == 0;
    struct stat st;
    int fd, err = 0;

    if (!full && strcmp(mode, "falloc") != 0)
        return 0;
    fd = open(file, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0)
        err = -errno;
    else if (st.st_size > 0 && S_ISREG(st.st_mode))
        err = full ? write_zeros(fd, (uint64_t)st.st_size)
                   : -posix_fallocate(fd, 0, st.st_size);
    if (err == 0 && full && fsync(fd) < 0)
        err = -errno;
    if (fd >= 0)
        close(fd);
    if (err < 0) {
        cli_error("%s: Could not preallocate data for the new file: %s", file,
                  strerror(-err));
        return -1;
    }
    return 0;
}

static int make_image(const struct create_args *a, const uint8_t *key,
                      size_t key_len)
{
    struct qcowkit_create_opts co;

    cli_qcow_create_opts(&a->q, a->format, a->size, key, key_len, &co);
    if (check_prealloc(a) < 0 || dry_run(a->file, &co) < 0)
        return -1;
    if (cli_create(a->file, &co) < 0)
        return -1;
    if (a->prealloc && a->format == QCOWKIT_FORMAT_RAW)
        return preallocate_raw(a->file, a->prealloc);
    return 0;
}

int cmd_create(int argc, char **argv)
{
    struct create_args a;
    struct cli_common co;
    const uint8_t *key = NULL;
    size_t key_len = 0;
    int ret;

    memset(&a, 0, sizeof a);
    ret = parse_create_args(argc, argv, &a, &co);
    if (ret != CLI_NEXT_OPTION)
        goto out;
    ret = 1;
    if (!a.have_size) {
        cli_error("%s: Image creation needs a size parameter", a.file);
        goto out;
    }
    if (cli_create_key(a.file, a.q.encryption, a.q.encrypt_format,
                       a.q.key_secret, &key, &key_len) < 0)
        goto out;
    if (!co.quiet)
        print_formatting(&a);
    if (make_image(&a, key, key_len) == 0)
        ret = 0;
out:
    free(a.prealloc);
    cli_qcow_opts_free(&a.q);
    return ret;
}
