/* cmd-convert.c - qcowkit convert: copy an image into a new one
 * (qemu-img convert). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define WINDOW      (2u << 20)
#define MAX_SPARSE  (16u << 20)
#define MAX_WORKERS 16 /* -m, as qemu-img's coroutines */

struct convert_opts {
    enum qcowkit_format out_format;
    struct cli_qcow_opts q;
    bool help;
};

/*
 * -o size=N: qemu-img convert checks the number and then ignores it (the
 * target takes the source's size); so does qcowkit.  Returns 0 or -1.
 */
static int ignored_size(const char *value)
{
    uint64_t size;
    const char *why;
    int err = cli_parse_size(value, UINT64_MAX, &size, &why);

    if (err == -ERANGE)
        cli_error("Value '%s' is out of range for parameter 'size'", value);
    else if (err < 0)
        cli_error("Parameter 'size' expects a non-negative number below 2^64");
    return err < 0 ? -1 : 0;
}

static int convert_option(void *ctx, const char *key, const char *value)
{
    struct convert_opts *o = ctx;

    if (strcmp(key, "help") == 0 || strcmp(key, "?") == 0) {
        o->help = true;
        return 0;
    }
    if (!value) {
        cli_error("Invalid parameter '%s': expected %s=VALUE", key, key);
        return -1;
    }
    if (o->out_format == QCOWKIT_FORMAT_QCOW) {
        int taken = cli_qcow_option(&o->q, key, value);
        if (taken != 0)
            return taken < 0 ? -1 : 0;
    }
    if (strcmp(key, "size") == 0)
        return ignored_size(value);
    cli_error("Invalid parameter '%s'", key);
    return -1;
}

struct copy_state {
    struct qcowkit_image *src, *dst;
    uint64_t size;
    uint64_t dst_size;     /* virtual size of the target */
    uint64_t sparse;       /* -S in bytes, 0 = write everything */
    uint32_t cluster_size; /* of the target, 0 for raw */
    bool compress, has_backing, no_create;
    unsigned workers; /* -m: threads that copy */
    bool ordered;     /* writes in guest order (no -W) */

    /* The copy loop's shared state, guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t turn;
    uint64_t window; /* bytes per job, a multiple of the target cluster */
    uint64_t unit;   /* alignment of jobs that start after a zero run */
    uint64_t next;   /* first byte not handed out yet */
    uint64_t status_end;
    bool status_zero; /* [.., status_end) reads as zeros */
    uint64_t next_seq, write_seq;
    bool failed;
};

/* One piece of work: a range read, checked and written by one worker. */
struct copy_job {
    uint64_t offset, len;
    uint64_t seq;
    bool zero; /* reads as zeros by its block status */
};

struct copy_worker {
    struct copy_state *s;
    uint8_t *buf, *cmp;
    /* -c: each cluster of the window deflated before the worker's turn */
    struct qcowkit_deflater *deflater;
    uint8_t *packed;     /* cluster i's stream at i * cluster size */
    size_t *packed_len;  /* 0: store cluster i plainly */
    uint8_t *kind;       /* enum cluster_kind of cluster i */
    uint64_t packed_end; /* bytes of the window to store (tail padded) */
    pthread_t thread;
    int ret;
};

/* Report the first failure only; the other workers then stop. */
static int copy_fail(struct copy_state *s, bool write, int err, uint64_t offset)
{
    const char *msg = qcowkit_errmsg();

    pthread_mutex_lock(&s->mu);
    if (!s->failed)
        cli_error("error while %s at byte %" PRIu64 ": %s",
                  write ? "writing" : "reading", offset,
                  msg && *msg ? msg : strerror(-err));
    s->failed = true;
    pthread_cond_broadcast(&s->turn);
    pthread_mutex_unlock(&s->mu);
    return -1;
}

static int write_error(int err, uint64_t offset)
{
    const char *msg = qcowkit_errmsg();

    cli_error("error while writing at byte %" PRIu64 ": %s", offset,
              msg && *msg ? msg : strerror(-err));
    return -1;
}

static int put_data(struct copy_state *s, const uint8_t *buf, uint64_t len,
                    uint64_t offset)
{
    int err = s->compress ? qcowkit_pwrite_compressed(s->dst, buf, len, offset)
                          : qcowkit_pwrite(s->dst, buf, len, offset);

    return err < 0 ? copy_fail(s, true, err, offset) : 0;
}

/* Zeros into a target that may not read zeros there (-n).  As qemu-img
 * does, they may unmap (a raw target gets holes, a qcow one its clusters'
 * space back), unless -S 0 asked for a fully allocated target. */
static int put_zeroes(struct copy_state *s, uint64_t len, uint64_t offset)
{
    unsigned flags = s->sparse ? QCOWKIT_ZEROES_MAY_UNMAP : 0;
    int err;

    if (!s->no_create)
        return 0;
    err = qcowkit_pwrite_zeroes_flags(s->dst, len, offset, flags);
    return err < 0 ? copy_fail(s, true, err, offset) : 0;
}

/* Target with a backing file: write only the clusters that differ. */
static int copy_window_backing(struct copy_worker *w, uint64_t offset,
                               uint64_t len)
{
    struct copy_state *s = w->s;
    uint64_t unit = s->cluster_size, i;
    int err = qcowkit_pread(s->dst, w->cmp, len, offset);

    if (err < 0)
        return copy_fail(s, false, err, offset);
    for (i = 0; i < len; i += unit) {
        uint64_t n = len - i < unit ? len - i : unit;
        if (memcmp(w->buf + i, w->cmp + i, n) != 0 &&
            put_data(s, w->buf + i, n, offset + i) < 0)
            return -1;
    }
    return 0;
}

enum cluster_kind { CLUSTER_ZERO, CLUSTER_PACK, CLUSTER_PLAIN };

/*
 * Deflate every cluster of the window, in parallel with the other workers
 * (no lock is taken).  A source that ends inside the target's last
 * cluster is padded with zeros to the target's end.
 */
static int deflate_window(struct copy_worker *w, uint64_t offset, uint64_t len)
{
    struct copy_state *s = w->s;
    uint64_t unit = s->cluster_size;

    if (offset + len == s->size && s->dst_size > s->size && len % unit) {
        uint64_t pad = unit - len % unit;
        if (pad > s->dst_size - s->size)
            pad = s->dst_size - s->size;
        memset(w->buf + len, 0, pad);
        len += pad;
    }
    w->packed_end = len;
    for (uint64_t i = 0, c = 0; i < len; i += unit, c++) {
        uint64_t n = len - i < unit ? len - i : unit;
        int err;
        if (cli_is_zero(w->buf + i, n)) {
            w->kind[c] = CLUSTER_ZERO;
            continue;
        }
        err = qcowkit_deflate_cluster(w->deflater, w->buf + i, n,
                                      w->packed + c * unit, &w->packed_len[c]);
        if (err < 0)
            return copy_fail(s, true, err, offset + i);
        w->kind[c] = w->packed_len[c] ? CLUSTER_PACK : CLUSTER_PLAIN;
    }
    return 0;
}

/*
 * Store the deflated window in guest order: zero clusters stay
 * unallocated, runs of clusters that do not shrink are written plainly.
 */
static int store_window(struct copy_worker *w, uint64_t offset)
{
    struct copy_state *s = w->s;
    uint64_t unit = s->cluster_size, len = w->packed_end, i = 0;

    while (i < len) {
        uint64_t c = i / unit, j = i;
        enum cluster_kind kind = w->kind[c];
        int err = 0;

        do
            j += len - j < unit ? len - j : unit;
        while (j < len && w->kind[j / unit] == kind && kind != CLUSTER_PACK);
        if (kind == CLUSTER_ZERO) {
            if (put_zeroes(s, j - i, offset + i) < 0)
                return -1;
        } else {
            err = kind == CLUSTER_PACK
                      ? qcowkit_pwrite_deflated(s->dst, w->packed + c * unit,
                                                w->packed_len[c], offset + i)
                      : qcowkit_pwrite(s->dst, w->buf + i, j - i, offset + i);
            if (err < 0)
                return copy_fail(s, true, err, offset + i);
        }
        i = j;
    }
    return 0;
}

/* Length of the -S piece at offset within a window of len bytes. */
static uint64_t piece(const struct copy_state *s, uint64_t offset, uint64_t at,
                      uint64_t len)
{
    uint64_t n = s->sparse - (offset + at) % s->sparse;

    return n < len - at ? n : len - at;
}

/* Runs of data are written; zero pieces of -S bytes are skipped. */
static int copy_window_sparse(struct copy_worker *w, uint64_t offset,
                              uint64_t len)
{
    struct copy_state *s = w->s;
    uint64_t i = 0;

    if (s->sparse == 0)
        return put_data(s, w->buf, len, offset);
    while (i < len) {
        uint64_t j = i + piece(s, offset, i, len);
        bool zero = cli_is_zero(w->buf + i, j - i);

        /* Pieces are aligned to -S in the guest; extend the run. */
        while (j < len) {
            uint64_t n = piece(s, offset, j, len);
            if (cli_is_zero(w->buf + j, n) != zero)
                break;
            j += n;
        }
        if (zero ? put_zeroes(s, j - i, offset + i) < 0
                 : put_data(s, w->buf + i, j - i, offset + i) < 0)
            return -1;
        i = j;
    }
    return 0;
}

/* Block status is asked for at most this much at once. */
#define STATUS_MAX (UINT64_C(1) << 30)

/* Stop the copy after a failed status call (mu held). */
static int status_fail(struct copy_state *s, int err, uint64_t off)
{
    const char *msg = qcowkit_errmsg();

    cli_error("error while reading at byte %" PRIu64 ": %s", off,
              msg && *msg ? msg : strerror(-err));
    s->failed = true;
    return -1;
}

/*
 * The status of the run from off (mu held): status_zero when the source
 * reads it as zeros and, with -B, the target's chain does too (then no
 * cluster there can differ).
 */
static int refresh_status(struct copy_state *s, uint64_t off)
{
    struct qcowkit_chain_extent st;
    uint64_t want = s->size - off < STATUS_MAX ? s->size - off : STATUS_MAX;
    int err = cli_chain_status(s->src, off, want, &st);

    if (err < 0)
        return status_fail(s, err, off);
    s->status_end = off + st.length;
    s->status_zero = (st.flags & QCOWKIT_EXTENT_ZERO) != 0;
    if (s->has_backing && s->status_zero && off < s->dst_size) {
        want = s->dst_size - off < st.length ? s->dst_size - off : st.length;
        err = cli_chain_status(s->dst, off, want, &st);
        if (err < 0)
            return status_fail(s, err, off);
        s->status_end = off + st.length;
        s->status_zero = (st.flags & QCOWKIT_EXTENT_ZERO) != 0;
    }
    return 0;
}

/*
 * Hand out the next job (mu held): ranges that read as zeros by their
 * block status are skipped whole, unless zeros must be written (-n, or
 * -S 0 without -c, which fully allocates as qemu-img does); everything
 * else goes in windows aligned to the window size.  Returns 1 with a
 * job, 0 at the end, -1 on error.
 */
static int next_job(struct copy_state *s, struct copy_job *job)
{
    while (!s->failed && s->next < s->size) {
        uint64_t off = s->next;
        uint64_t end = off - off % s->window + s->window;

        if (end > s->size)
            end = s->size;
        if (off >= s->status_end && refresh_status(s, off) < 0)
            return -1;
        if (s->status_zero) {
            uint64_t zend = s->status_end;
            if (zend < s->size)
                zend -= zend % s->unit;
            if (zend > off) {
                if (!s->has_backing &&
                    (s->no_create || (s->sparse == 0 && !s->compress))) {
                    job->offset = off;
                    job->len = (zend < end ? zend : end) - off;
                    job->zero = true;
                    job->seq = s->next_seq++;
                    s->next = off + job->len;
                    return 1;
                }
                s->next = zend;
                cli_progress_print(
                    (float)(zend - off) * 100.0f / (float)s->size, 0);
                continue;
            }
        }
        job->offset = off;
        job->len = end - off;
        job->zero = false;
        job->seq = s->next_seq++;
        s->next = end;
        return 1;
    }
    return s->failed ? -1 : 0;
}

/* Read (or make) the job's data, then write it, in turn if ordered. */
static int run_job(struct copy_worker *w, const struct copy_job *job)
{
    struct copy_state *s = w->s;
    int err = 0;

    if (job->zero && !s->no_create)
        memset(w->buf, 0, job->len);
    else if (!job->zero) {
        err = qcowkit_pread(s->src, w->buf, job->len, job->offset);
        if (err < 0)
            return copy_fail(s, false, err, job->offset);
    }
    if (!job->zero && w->deflater &&
        deflate_window(w, job->offset, job->len) < 0)
        return -1;
    if (s->ordered) {
        pthread_mutex_lock(&s->mu);
        while (!s->failed && s->write_seq != job->seq)
            pthread_cond_wait(&s->turn, &s->mu);
        pthread_mutex_unlock(&s->mu);
    }
    if (job->zero)
        err = s->no_create ? put_zeroes(s, job->len, job->offset)
                           : put_data(s, w->buf, job->len, job->offset);
    else if (s->has_backing)
        err = copy_window_backing(w, job->offset, job->len);
    else if (w->deflater)
        err = store_window(w, job->offset);
    else
        err = copy_window_sparse(w, job->offset, job->len);
    pthread_mutex_lock(&s->mu);
    if (s->ordered) {
        s->write_seq++;
        pthread_cond_broadcast(&s->turn);
    }
    if (err == 0)
        cli_progress_print((float)job->len * 100.0f / (float)s->size, 0);
    pthread_mutex_unlock(&s->mu);
    return err;
}

static void *copy_worker_main(void *opaque)
{
    struct copy_worker *w = opaque;
    struct copy_state *s = w->s;
    struct copy_job job;
    int more;

    for (;;) {
        pthread_mutex_lock(&s->mu);
        more = next_job(s, &job);
        pthread_mutex_unlock(&s->mu);
        if (more <= 0) {
            w->ret = more;
            break;
        }
        if (run_job(w, &job) < 0) {
            w->ret = -1;
            break;
        }
    }
    return NULL;
}

/* A worker's deflater and room for one window of streams. */
static int alloc_deflate(struct copy_worker *w, uint64_t window)
{
    uint64_t clusters = window / w->s->cluster_size + 1;
    int err = qcowkit_deflater_new(w->s->dst, &w->deflater);

    if (err < 0) {
        cli_lib_error(err, NULL);
        return -1;
    }
    w->packed = malloc(clusters * w->s->cluster_size);
    w->packed_len = calloc(clusters, sizeof *w->packed_len);
    w->kind = calloc(clusters, 1);
    if (!w->packed || !w->packed_len || !w->kind) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

/*
 * Copy with a pool of workers (-m).  Each takes the next window, reads
 * it (reads run in parallel) and writes it.  Without -W, writes to a
 * qcow target go in guest order, so that its clusters are laid out as
 * qemu-img lays them out; a raw target is the same whatever the order,
 * and with -c each worker deflates its window before its turn, so that
 * compression runs on every core and the layout does not depend on it.
 */
static int copy_image(struct copy_state *s)
{
    uint64_t window = WINDOW, align = s->cluster_size ? s->cluster_size : 512;
    struct copy_worker *w;
    unsigned n, started = 0, i;
    int ret = 0;

    if (s->sparse > window)
        window = s->sparse;
    window = (window + align - 1) / align * align;
    s->window = window;
    s->unit = align;
    n = s->workers ? s->workers : 1;
    if ((uint64_t)n > s->size / window + 1)
        n = (unsigned)(s->size / window + 1);
    w = calloc(n, sizeof *w);
    if (!w) {
        cli_error("out of memory");
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->turn, NULL);
    for (i = 0; i < n; i++) {
        w[i].s = s;
        w[i].buf = malloc(window);
        w[i].cmp = s->has_backing ? malloc(window) : NULL;
        if (s->compress && !s->has_backing &&
            alloc_deflate(&w[i], window) < 0) {
            ret = -1;
            goto out;
        }
        if (!w[i].buf || (s->has_backing && !w[i].cmp)) {
            cli_error("out of memory");
            ret = -1;
            goto out;
        }
    }
    cli_progress_print(0, 100);
    if (n == 1) {
        copy_worker_main(&w[0]);
    } else {
        for (i = 0; i < n; i++) {
            if (pthread_create(&w[i].thread, NULL, copy_worker_main, &w[i]))
                break;
            started++;
        }
        if (started == 0)
            copy_worker_main(&w[0]);
        for (i = 0; i < started; i++)
            pthread_join(w[i].thread, NULL);
    }
    for (i = 0; i < n; i++)
        if (w[i].ret < 0)
            ret = -1;
out:
    for (i = 0; i < n; i++) {
        free(w[i].buf);
        free(w[i].cmp);
        free(w[i].packed);
        free(w[i].packed_len);
        free(w[i].kind);
        qcowkit_deflater_free(w[i].deflater);
    }
    free(w);
    pthread_cond_destroy(&s->turn);
    pthread_mutex_destroy(&s->mu);
    return ret;
}

enum {
    OPT_TARGET_IS_ZERO = 256,
    OPT_SALVAGE,
    OPT_TARGET_IMAGE_OPTS,
};
static const struct option convert_longopts[] = {
    CLI_LONGOPT_HELP,
    CLI_LONGOPT_FORCE_SHARE,
    CLI_LONGOPT_IMAGE_OPTS,
    {"target-image-opts", no_argument, NULL, OPT_TARGET_IMAGE_OPTS},
    CLI_LONGOPT_OBJECT,
    {"target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO},
    {"salvage", no_argument, NULL, OPT_SALVAGE},
    {NULL, 0, NULL, 0},
};
#define CONVERT_OPTSTRING ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:"

struct convert_args {
    struct cli_common co;
    const char *out_fmt, *opt_B, *opt_F, *cache, *src_path, *dst_path;
    enum qcowkit_format backing_format; /* -F, or backing_fmt= */
    bool progress, target_image_opts, out_of_order;
};

/* -S and -m, which take numbers. */
static int convert_number(struct copy_state *s, int c)
{
    const char *why;
    uint64_t v;
    char *end;
    long n;

    if (c == 'S') {
        if (cli_parse_size(optarg, MAX_SPARSE, &v, &why) < 0 || v % 512 != 0) {
            cli_error("Invalid buffer size for sparse output specified. "
                      "Valid sizes are multiples of 512 up to %u. Select "
                      "0 to disable sparse detection (fully allocates "
                      "output).",
                      MAX_SPARSE);
            return 1;
        }
        s->sparse = v;
        return CLI_NEXT_OPTION;
    }
    n = strtol(optarg, &end, 10);
    if (end == optarg || *end || n < 1 || n > MAX_WORKERS) {
        cli_error("Invalid number of coroutines. Allowed number of "
                  "coroutines is between 1 and %d",
                  MAX_WORKERS);
        return 1;
    }
    s->workers = (unsigned)n;
    return CLI_NEXT_OPTION;
}

/* One option of the first pass: CLI_NEXT_OPTION or the exit code. */
static int convert_opt(struct convert_args *a, struct copy_state *s,
                       char **argv, int c)
{
    switch (c) {
    case 'O':
        a->out_fmt = optarg;
        break;
    case 'B':
        a->opt_B = optarg;
        break;
    case 'F':
        a->opt_F = optarg;
        break;
    case 'c':
        s->compress = true;
        break;
    case 'S':
    case 'm':
        return convert_number(s, c);
    case 'p':
        a->progress = true;
        break;
    case 't':
        a->cache = optarg;
        return cli_check_cache(optarg) < 0 ? 1 : CLI_NEXT_OPTION;
    case 'n':
        s->no_create = true;
        break;
    case 'W':
        a->out_of_order = true;
        break;
    case 'o': /* parsed in a second pass, once -O is known */
    case 'C':
    case 'r':
    case OPT_TARGET_IS_ZERO:
    case OPT_SALVAGE:
        break; /* accepted; they do not change the result */
    case 'l':
        cli_error("Snapshots are not supported by qcow images");
        return 1;
    case OPT_TARGET_IMAGE_OPTS:
        a->target_image_opts = true;
        break;
    default:
        return cli_common_option(&a->co, argv, c);
    }
    return CLI_NEXT_OPTION;
}

static void print_create_help(enum qcowkit_format format)
{
    printf("Supported options:\n");
    if (format == QCOWKIT_FORMAT_QCOW)
        printf("  backing_file=<str>     - File name of a base image\n"
               "  backing_fmt=<str>      - Image format of the base "
               "image\n"
               "  cluster_size=<size>    - qcow cluster size "
               "(qcowkit extension)\n"
               "  encrypt.format=<str>   - Encrypt the image, format "
               "choices: 'aes'\n"
               "  encrypt.key-secret=<str> - ID of the secret that "
               "provides the AES encryption key\n"
               "  encryption=<bool (on/off)> - Encrypt the image with "
               "format 'aes'. (Deprecated in favor of "
               "encrypt.format=aes)\n");
}

/*
 * Both passes over the options, then the operands.  Returns
 * CLI_NEXT_OPTION when the conversion is to run, else the exit code.
 */
static int parse_convert_args(int argc, char **argv, struct convert_args *a,
                              struct convert_opts *o, struct copy_state *s)
{
    enum qcowkit_format src_format;
    int c, ret;

    cli_common_init(&a->co, "convert");
    a->out_fmt = "raw";
    a->cache = "unsafe";
    s->sparse = 4096;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CONVERT_OPTSTRING, convert_longopts,
                            NULL)) != -1)
        if ((ret = convert_opt(a, s, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    if (a->co.quiet)
        a->progress = false;
    if (cli_parse_format(a->out_fmt, &o->out_format) < 0 ||
        cli_parse_format(a->co.fmt, &src_format) < 0)
        return 1;
    optind = 0;
    while ((c = getopt_long(argc, argv, CONVERT_OPTSTRING, convert_longopts,
                            NULL)) != -1)
        if (c == 'o' && s->no_create) {
            cli_error("-o has no effect when skipping image creation");
            return 1;
        } else if (c == 'o' && cli_parse_opts(optarg, convert_option, o) < 0)
            return 1;
    if (o->help) {
        print_create_help(o->out_format);
        return 0;
    }
    if (argc - optind < 2)
        return cli_usage_error("convert", "Must specify image file name");
    if (argc - optind > 2)
        return cli_usage_error("convert", "Only one source image is supported");
    a->src_path = argv[optind];
    a->dst_path = argv[optind + 1];
    return CLI_NEXT_OPTION;
}

/* Options that exclude each other, and the new image's key. */
static int check_convert_args(struct convert_args *a, struct convert_opts *o,
                              struct copy_state *s, const uint8_t **key,
                              size_t *key_len)
{
    if (a->opt_B && cli_set_string(&o->q.backing_file, a->opt_B) < 0)
        return -1;
    if (a->opt_F && cli_set_string(&o->q.backing_fmt, a->opt_F) < 0)
        return -1;
    if (o->q.backing_file && o->out_format == QCOWKIT_FORMAT_RAW) {
        cli_error("%s: Backing file not supported for file format 'raw'",
                  a->dst_path);
        return -1;
    }
    if (o->q.backing_file && !o->q.backing_fmt) {
        cli_error("Use of backing file requires explicit backing format");
        return -1;
    }
    if (cli_parse_format(o->q.backing_fmt, &a->backing_format) < 0)
        return -1;
    if (s->compress && o->out_format != QCOWKIT_FORMAT_QCOW) {
        cli_error("Compression not supported for this file format");
        return -1;
    }
    if (a->target_image_opts && !s->no_create) {
        cli_error("--target-image-opts requires use of -n flag");
        return -1;
    }
    if (!s->no_create &&
        cli_create_key(a->dst_path, o->q.encryption, o->q.encrypt_format,
                       o->q.key_secret, key, key_len) < 0)
        return -1;
    if (s->compress && *key) {
        cli_error("Compression and encryption not supported at the same "
                  "time");
        return -1;
    }
    if (s->no_create && o->q.backing_file) {
        /* qemu-img ignores -B with -n; the target keeps its own. */
        free(o->q.backing_file);
        o->q.backing_file = NULL;
    }
    return 0;
}

static int create_target(const struct convert_args *a,
                         const struct convert_opts *o,
                         const struct copy_state *s, const uint8_t *key,
                         size_t key_len)
{
    struct qcowkit_create_opts co;

    cli_qcow_create_opts(&o->q, o->out_format, s->size, key, key_len, &co);
    /* Locked before truncating: `convert A A` finds A in use. */
    return cli_create(a->dst_path, &co);
}

/* The target: FILE (with the key it was created with), or with
 * --target-image-opts and -n an existing image and its key secret. */
static int open_target(const struct convert_args *a,
                       const struct convert_opts *o, bool with_key,
                       struct cli_image_spec *dst_spec, struct copy_state *s)
{
    struct qcowkit_info info;
    int err;

    if (cli_image_spec_parse(a->dst_path, a->target_image_opts,
                             a->target_image_opts ? QCOWKIT_FORMAT_AUTO
                                                  : o->out_format,
                             dst_spec) < 0)
        return -1;
    if (!a->target_image_opts && with_key &&
        !(dst_spec->key_secret = strdup(o->q.key_secret))) {
        cli_error("out of memory");
        return -1;
    }
    /* cache=unsafe, the default as in qemu-img: no syncs at all. */
    if (cli_open_spec(
            dst_spec,
            QCOWKIT_OPEN_RDWR |
                (strcmp(a->cache, "unsafe") == 0 ? QCOWKIT_OPEN_NO_SYNC : 0),
            a->backing_format, CLI_OPEN_NEED_KEY, &s->dst) < 0)
        return -1;
    err = cli_get_info(s->dst, &info);
    if (err < 0) {
        cli_lib_error(err, NULL);
        return -1;
    }
    s->cluster_size = info.cluster_size;
    s->dst_size = info.virtual_size;
    s->has_backing = info.backing_file[0] != '\0';
    if (info.virtual_size < s->size) {
        cli_error("%s: target image of %" PRIu64
                  " bytes is smaller than the source (%" PRIu64 " bytes)",
                  a->dst_path, info.virtual_size, s->size);
        return -1;
    }
    return 0;
}

/* Copy with the workers, then flush unless cache=unsafe. */
static int run_copy(const struct convert_args *a, struct copy_state *s)
{
    int err;

    /*
     * Default -m: two workers per online CPU (qemu-img: 8 coroutines), so
     * that while one waits for its turn to write, another keeps the CPU
     * busy deflating or reading.
     */
    if (s->workers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        s->workers = cpus < 1                 ? 2
                     : cpus > MAX_WORKERS / 2 ? MAX_WORKERS
                                              : 2 * cpus;
    }
    s->ordered = !a->out_of_order && s->cluster_size != 0;
    cli_progress_init(a->progress, 1.0f);
    err = copy_image(s);
    if (err == 0 && strcmp(a->cache, "unsafe") != 0) {
        err = qcowkit_flush(s->dst);
        if (err < 0)
            write_error(err, 0);
    }
    cli_progress_end();
    return err;
}

int cmd_convert(int argc, char **argv)
{
    struct convert_args a;
    struct convert_opts o;
    struct copy_state s;
    enum qcowkit_format src_format;
    struct cli_image_spec dst_spec;
    const uint8_t *key = NULL;
    size_t key_len = 0;
    int ret;

    memset(&a, 0, sizeof a);
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    memset(&dst_spec, 0, sizeof dst_spec);
    ret = parse_convert_args(argc, argv, &a, &o, &s);
    if (ret != CLI_NEXT_OPTION)
        goto out;
    ret = 1;
    cli_parse_format(a.co.fmt, &src_format); /* checked when parsed */
    if (check_convert_args(&a, &o, &s, &key, &key_len) < 0)
        goto out;
    if (cli_open_image(a.src_path, a.co.image_opts, src_format,
                       QCOWKIT_OPEN_RDONLY |
                           (a.co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0),
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &s.src,
                       NULL) < 0)
        goto out;
    s.size = cli_image_size(s.src);
    if (!s.no_create && create_target(&a, &o, &s, key, key_len) < 0)
        goto out;
    if (open_target(&a, &o, key != NULL, &dst_spec, &s) < 0 ||
        run_copy(&a, &s) < 0)
        goto out;
    ret = 0;
out:
    if (s.dst && qcowkit_close(s.dst) < 0 && ret == 0) {
        cli_lib_error(-EIO, a.dst_path);
        ret = 1;
    }
    qcowkit_close(s.src);
    cli_image_spec_free(&dst_spec);
    cli_qcow_opts_free(&o.q);
    return ret;
}
