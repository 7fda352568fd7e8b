/* cmd-rebase.c - qcowkit rebase: give an overlay another backing file
 * (qemu-img rebase).  QEMU 7.2 cannot change a qcow image's backing file;
 * qcowkit can.  Safe mode copies into the overlay every cluster that would
 * read differently through the new backing file, so that what the guest
 * sees does not change; -u changes only the name. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define IO_BUF_SIZE (2u << 20)

struct rebase_state {
    struct qcowkit_image *top;     /* read-write, through the old chain */
    struct qcowkit_image *new_img; /* the new backing file, or NULL */
    const char *name;
    uint64_t size, new_size;
    uint32_t cluster; /* unit of comparison and of writes */
    bool compress;
    uint8_t *old_buf, *new_buf;
};

/* [offset, offset+n) is unallocated in the overlay: copy what differs. */
static int rebase_range(struct rebase_state *s, uint64_t offset, uint64_t n)
{
    int err = qcowkit_pread(s->top, s->old_buf, n, offset);

    if (err < 0) {
        cli_error("error while reading from old backing file: %s",
                  qcowkit_errmsg());
        return -1;
    }
    memset(s->new_buf, 0, n);
    if (s->new_img && offset < s->new_size) {
        uint64_t m = s->new_size - offset < n ? s->new_size - offset : n;
        err = qcowkit_pread(s->new_img, s->new_buf, m, offset);
        if (err < 0) {
            cli_error("error while reading from new backing file: %s",
                      qcowkit_errmsg());
            return -1;
        }
    }
    for (uint64_t i = 0; i < n;) {
        /* Whole clusters of the overlay, so that no write needs a
         * copy-on-write read of the part it does not cover. */
        uint64_t at = offset + i;
        uint64_t m = s->cluster - at % s->cluster;
        if (m > n - i)
            m = n - i;
        if (memcmp(s->old_buf + i, s->new_buf + i, m) != 0) {
            err = s->compress && (at % s->cluster == 0) &&
                          (m == s->cluster || at + m == s->size)
                      ? qcowkit_pwrite_compressed(s->top, s->old_buf + i, m, at)
                      : qcowkit_pwrite(s->top, s->old_buf + i, m, at);
            if (err < 0) {
                cli_error("Error while writing to COW image: %s",
                          qcowkit_errmsg());
                return -1;
            }
        }
        i += m;
    }
    return 0;
}

/*
 * The next run from offset, cluster-aligned, where the overlay holds no
 * data.  *differs is false when both the old and the new chain read it as
 * zeros, so that nothing there needs a look.  Returns its length, or 0
 * with *top_holds set where the overlay holds the run (skipped whole).
 */
static int next_run(struct rebase_state *s, uint64_t offset, uint64_t *len,
                    bool *top_holds, bool *differs)
{
    struct qcowkit_chain_extent old_x, new_x;
    uint64_t want = s->size - offset, end;
    bool zeros;
    int err;

    if (want > QCOWKIT_CHAIN_MAX_RUN)
        want = QCOWKIT_CHAIN_MAX_RUN;
    err = cli_chain_status(s->top, offset, want, &old_x);
    if (err < 0)
        return err;
    *len = old_x.length;
    *top_holds = old_x.depth == 0 && (old_x.flags & QCOWKIT_EXTENT_ALLOCATED);
    if (*top_holds)
        return 0;
    zeros = (old_x.flags & QCOWKIT_EXTENT_ZERO) != 0;
    if (zeros && s->new_img && offset < s->new_size) {
        want = s->new_size - offset < *len ? s->new_size - offset : *len;
        err = cli_chain_status(s->new_img, offset, want, &new_x);
        if (err < 0)
            return err;
        *len = new_x.length;
        zeros = (new_x.flags & QCOWKIT_EXTENT_ZERO) != 0;
    }
    *differs = !zeros;
    /* Runs meet at the overlay's cluster boundaries, so that -c still
     * sees whole clusters; a zero run shorter than that is looked at. */
    end = offset + *len;
    if (end < s->size && end % s->cluster) {
        end -= end % s->cluster;
        if (end <= offset) {
            end = offset - offset % s->cluster + s->cluster;
            *differs = true;
        }
        if (end > s->size)
            end = s->size;
        *len = end - offset;
    }
    return 0;
}

/*
 * Copy into the overlay what the new chain would read differently.  Only
 * runs that either chain holds are read, so that the time follows the
 * data and the tables, not the virtual size.
 */
static int rebase_safe(struct rebase_state *s)
{
    uint64_t offset = 0;

    s->old_buf = malloc(IO_BUF_SIZE);
    s->new_buf = malloc(IO_BUF_SIZE);
    if (!s->old_buf || !s->new_buf) {
        cli_error("out of memory");
        return -1;
    }
    while (offset < s->size) {
        uint64_t n;
        bool top_holds = false, differs = false;
        int err = next_run(s, offset, &n, &top_holds, &differs);

        if (err < 0) {
            cli_error("error while reading image metadata: %s",
                      qcowkit_errmsg());
            return -1;
        }
        if (differs && n > IO_BUF_SIZE)
            n = IO_BUF_SIZE;
        if (differs && rebase_range(s, offset, n) < 0)
            return -1;
        offset += n;
        cli_progress_print((float)n * 100.0f / (float)s->size, 0);
    }
    return 0;
}

struct rebase_args {
    struct cli_common co;
    const char *filename, *cache, *src_cache, *backing, *backing_fmt;
    bool progress, unsafe, compress;
};

/* Returns CLI_NEXT_OPTION when the rebase is to run, else the exit code. */
static int parse_rebase_args(int argc, char **argv, struct rebase_args *a)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,        CLI_LONGOPT_OBJECT, CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_FORCE_SHARE, {NULL, 0, NULL, 0},
    };
    int c, ret;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "rebase");
    a->cache = a->src_cache = "writeback";
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qUc", longopts, NULL)) !=
           -1) {
        if (c == 'F')
            a->backing_fmt = optarg;
        else if (c == 'b')
            a->backing = optarg;
        else if (c == 'u')
            a->unsafe = true;
        else if (c == 'p')
            a->progress = true;
        else if (c == 't')
            a->cache = optarg;
        else if (c == 'T')
            a->src_cache = optarg; /* checked with -t, below */
        else if (c == 'c')
            a->compress = true;
        else if ((ret = cli_common_option(&a->co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    if (a->co.quiet)
        a->progress = false;
    if (optind != argc - 1)
        return cli_usage_error("rebase", "Expecting one image file name");
    if (!a->unsafe && !a->backing)
        return cli_usage_error("rebase", "Must specify backing file (-b) or "
                                         "use unsafe mode (-u)");
    a->filename = argv[optind];
    return CLI_NEXT_OPTION;
}

/* -F: the new backing file's format; prints an error and returns -1. */
static int parse_backing_format(const char *name, enum qcowkit_format *format)
{
    *format = QCOWKIT_FORMAT_AUTO;
    if (!name)
        return 0;
    if (strcmp(name, "qcow") == 0)
        *format = QCOWKIT_FORMAT_QCOW;
    else if (strcmp(name, "raw") == 0)
        *format = QCOWKIT_FORMAT_RAW;
    else {
        cli_error("Invalid format name: '%s'", name);
        return -1;
    }
    return 0;
}

/* Open the new backing file (named relative to the overlay) into s. */
static int open_new_backing(struct rebase_state *s,
                            const struct cli_image_spec *spec,
                            const struct rebase_args *a,
                            enum qcowkit_format format, char **new_path)
{
    struct qcowkit_open_opts o;
    const char *id =
        spec->backing_key_secret ? spec->backing_key_secret : spec->key_secret;
    const char *why;
    int err;

    /* A relative name is relative to the overlay, as in QEMU. */
    *new_path = cli_backing_path(spec->filename, a->backing);
    if (!*new_path) {
        cli_error("out of memory");
        return -1;
    }
    qcowkit_open_opts_init(&o);
    o.flags = QCOWKIT_OPEN_RDONLY |
              (a->co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0);
    o.format = format;
    if (id && cli_secret_get(id, &o.key, &o.key_len, &why) < 0) {
        cli_error("Could not open new backing file '%s': %s", a->backing, why);
        return -1;
    }
    err = qcowkit_open(*new_path, &o, &s->new_img);
    if (err < 0) {
        const char *msg = qcowkit_errmsg();
        cli_error("Could not open new backing file '%s': %s", a->backing,
                  msg && *msg ? msg : strerror(-err));
        s->new_img = NULL;
        return -1;
    }
    s->new_size = cli_image_size(s->new_img);
    return 0;
}

/* Open the overlay into s, through its old chain unless -u. */
static int open_overlay(struct rebase_state *s, struct cli_image_spec *spec,
                        const struct rebase_args *a)
{
    enum qcowkit_format format;
    struct qcowkit_info info;
    int err;

    if (cli_parse_format(a->co.fmt, &format) < 0 ||
        cli_image_spec_parse(a->filename, a->co.image_opts, format, spec) < 0)
        return -1;
    /* -u: the old backing file need not exist (renaming it is the point). */
    if (cli_open_spec(
            spec, QCOWKIT_OPEN_RDWR | (a->unsafe ? QCOWKIT_OPEN_NO_BACKING : 0),
            QCOWKIT_FORMAT_AUTO,
            a->unsafe ? CLI_OPEN_NO_KEY : CLI_OPEN_NEED_KEY, &s->top) < 0)
        return -1;
    if (parse_backing_format(a->backing_fmt, &format) < 0)
        return -1;
    err = cli_get_info(s->top, &info);
    if (err < 0) {
        cli_lib_error(err, a->filename);
        return -1;
    }
    s->name = spec->filename;
    s->size = info.virtual_size;
    s->cluster = info.cluster_size ? info.cluster_size : 65536;
    s->compress = a->compress;
    if (s->compress && info.format != QCOWKIT_FORMAT_QCOW) {
        cli_error("Compression not supported for this file format");
        return -1;
    }
    return 0;
}

/* Flush the copied data, then store the new name. */
static int store_backing(struct rebase_state *s, const struct rebase_args *a)
{
    const char *backing = a->backing;
    int err = strcmp(a->cache, "unsafe") == 0 ? 0 : qcowkit_flush(s->top);

    if (err == 0)
        err =
            qcowkit_set_backing(s->top, backing && backing[0] ? backing : NULL);
    if (err < 0) {
        const char *msg = qcowkit_errmsg();
        cli_error("Could not change the backing file to '%s': %s",
                  backing ? backing : "", msg && *msg ? msg : strerror(-err));
        return -1;
    }
    return 0;
}

int cmd_rebase(int argc, char **argv)
{
    struct rebase_args a;
    enum qcowkit_format new_format;
    struct rebase_state s;
    struct cli_image_spec spec;
    char *new_path = NULL;
    int ret = parse_rebase_args(argc, argv, &a);

    if (ret != CLI_NEXT_OPTION)
        return ret;
    ret = 1;
    memset(&s, 0, sizeof s);
    memset(&spec, 0, sizeof spec);
    cli_progress_init(a.progress, 2.0f);
    cli_progress_print(0, 100);
    if (cli_check_cache(a.cache) < 0)
        goto out;
    if (!cli_cache_mode_valid(a.src_cache)) {
        cli_error("Invalid source cache option: %s", a.src_cache);
        goto out;
    }
    if (open_overlay(&s, &spec, &a) < 0)
        goto out;
    parse_backing_format(a.backing_fmt, &new_format);
    if (!a.unsafe && a.backing[0] &&
        open_new_backing(&s, &spec, &a, new_format, &new_path) < 0)
        goto out;
    if (!a.unsafe && rebase_safe(&s) < 0)
        goto out;
    if (store_backing(&s, &a) < 0)
        goto out;
    cli_progress_print(100, 0);
    ret = 0;
out:
    cli_progress_end();
    qcowkit_close(s.new_img);
    if (s.top && qcowkit_close(s.top) < 0 && ret == 0) {
        cli_lib_error(-EIO, a.filename);
        ret = 1;
    }
    free(s.old_buf);
    free(s.new_buf);
    free(new_path);
    cli_image_spec_free(&spec);
    return ret;
}
