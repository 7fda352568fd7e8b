/* cmd-commit.c - qcowkit commit: copy an overlay's data down into its
 * backing file, then empty the overlay (qemu-img commit). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define IO_BUF_SIZE (2u << 20)

/* Is name the image whose resolved path is path, as -b names it: the
 * stored backing name itself, or a path relative to the overlay? */
static bool same_image(const char *top, const char *stored, const char *name,
                       const char *path)
{
    char *given, a[PATH_MAX], b[PATH_MAX];
    bool same = false;

    if (strcmp(name, stored) == 0)
        return true;
    given = cli_backing_path(top, name);
    if (given && realpath(given, a) && realpath(path, b))
        same = strcmp(a, b) == 0;
    free(given);
    return same;
}

/* An image of the chain below the overlay, as commit opens it again. */
struct commit_layer {
    char *path;
    enum qcowkit_format format;
};

/*
 * The images that receive or give data: base, and the ones between the
 * overlay and base (mid[0] is the overlay's backing file, mid[n_mid - 1]
 * the image just above base).
 */
struct commit_chain {
    struct commit_layer base;
    struct commit_layer *mid;
    size_t n_mid;
};

static void commit_chain_free(struct commit_chain *c)
{
    for (size_t i = 0; i < c->n_mid; i++)
        free(c->mid[i].path);
    free(c->mid);
    free(c->base.path);
}

/* The backing file of layer (which has one): resolved path and format. */
static int backing_layer(struct qcowkit_image *layer,
                         const struct qcowkit_info *li,
                         struct commit_layer *out)
{
    struct qcowkit_image *b = qcowkit_backing(layer);
    struct qcowkit_info bi;
    int err = cli_get_info(b, &bi);

    if (err < 0) {
        cli_lib_error(err, li->backing_path);
        return -1;
    }
    /* A probed backing file is probed again, so that the library keeps
     * guarding its first sector (a raw file must not become qcow). */
    out->format = bi.format_probed ? QCOWKIT_FORMAT_AUTO : bi.format;
    out->path =
        strdup(li->backing_path[0] ? li->backing_path : qcowkit_name(b));
    if (!out->path) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

/* Add the layer as an image between the overlay and base. */
static int add_mid(struct commit_chain *c, struct commit_layer *l)
{
    struct commit_layer *m = realloc(c->mid, (c->n_mid + 1) * sizeof *m);

    if (!m) {
        free(l->path);
        cli_error("out of memory");
        return -1;
    }
    c->mid = m;
    c->mid[c->n_mid++] = *l;
    return 0;
}

/*
 * Walk the chain of top down to base (-b), or to the direct backing file
 * without -b, recording each image on the way.  Returns 0, or -1 after
 * printing why (base is not in the chain).
 */
static int walk_chain(struct qcowkit_image *top, const char *arg,
                      const char *base, struct commit_chain *c)
{
    struct qcowkit_image *layer;

    for (layer = top; qcowkit_backing(layer); layer = qcowkit_backing(layer)) {
        struct qcowkit_info li;
        struct commit_layer l;
        int err = cli_get_info(layer, &li);

        if (err < 0) {
            cli_lib_error(err, qcowkit_name(layer));
            return -1;
        }
        if (backing_layer(layer, &li, &l) < 0)
            return -1;
        if (!base || same_image(qcowkit_name(layer), li.backing_file, base,
                                li.backing_path)) {
            c->base = l;
            return 0;
        }
        if (add_mid(c, &l) < 0)
            return -1;
    }
    cli_error("Did not find '%s' in the backing chain of '%s'", base, arg);
    return -1;
}

/*
 * Find base (-b, or the direct backing file of the image spec names) and
 * the images between, as QEMU does: -b may name any image of the chain.
 */
static int find_base(const struct cli_image_spec *spec, const char *base,
                     struct commit_chain *c)
{
    struct qcowkit_image *top;
    int err;

    memset(c, 0, sizeof *c);
    err = cli_open_spec(spec, QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_AUTO,
                        CLI_OPEN_NO_KEY, &top);
    if (err < 0)
        return -1;
    if (!qcowkit_backing(top)) {
        cli_error("Image does not have a backing file");
        qcowkit_close(top);
        return -1;
    }
    err = walk_chain(top, spec->arg, base, c);
    qcowkit_close(top);
    return err;
}

/* Copy every cluster allocated in top (below limit) into base; the
 * progress meter advances by share of its length over the run. */
static int copy_down(struct qcowkit_image *top, const char *top_name,
                     uint64_t limit, struct qcowkit_image *base,
                     const char *base_name, float share)
{
    uint64_t size = cli_image_size(top), offset = 0;
    uint8_t *buf = malloc(IO_BUF_SIZE);
    int err = 0;

    if (!buf) {
        cli_error("out of memory");
        return -1;
    }
    if (size > limit)
        size = limit;
    while (offset < size) {
        struct qcowkit_extent e;
        uint64_t n;

        err = qcowkit_block_status(top, offset, size - offset, &e);
        if (err < 0) {
            cli_lib_error(err, top_name);
            break;
        }
        n = e.length;
        if (e.flags & QCOWKIT_EXTENT_ALLOCATED) {
            if (n > IO_BUF_SIZE)
                n = IO_BUF_SIZE;
            err = qcowkit_pread(top, buf, n, offset);
            if (err < 0) {
                cli_error("error while reading offset %" PRIu64 " of %s: %s",
                          offset, top_name, qcowkit_errmsg());
                break;
            }
            err = qcowkit_pwrite(base, buf, n, offset);
            if (err < 0) {
                cli_error("error while writing offset %" PRIu64 " of %s: %s",
                          offset, base_name, qcowkit_errmsg());
                break;
            }
        }
        offset += n;
        cli_progress_print((float)n / (float)size * 100 * share, 100);
    }
    free(buf);
    return err < 0 ? -1 : 0;
}

struct commit_args {
    struct cli_common co;
    const char *image, *cache, *base, *rate;
    bool progress, drop;
};

/* Returns CLI_NEXT_OPTION when the commit is to run, else the exit code. */
static int parse_commit_args(int argc, char **argv, struct commit_args *a)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_OBJECT,
        CLI_LONGOPT_IMAGE_OPTS,
        {NULL, 0, NULL, 0},
    };
    uint64_t rate;
    int c, ret;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "commit");
    a->cache = "writeback";
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:ht:b:dpqr:", longopts, NULL)) !=
           -1) {
        if (c == 't') {
            a->cache = optarg;
        } else if (c == 'b') {
            a->base = optarg;
            a->drop = true; /* -b implies -d, as in qemu-img */
        } else if (c == 'd') {
            a->drop = true;
        } else if (c == 'p') {
            a->progress = true;
        } else if (c == 'r') {
            if (cli_parse_size_arg(optarg, "rate limit", &rate) < 0)
                return 1;
            a->rate = optarg;
        } else if ((ret = cli_common_option(&a->co, argv, c)) !=
                   CLI_NEXT_OPTION) {
            return ret;
        }
    }
    if (a->co.quiet)
        a->progress = false;
    if (optind != argc - 1)
        return cli_usage_error("commit", "Expecting one image file name");
    a->image = argv[optind];
    if (cli_check_cache(a->cache) < 0)
        return 1;
    return CLI_NEXT_OPTION;
}

/* Open an image of the chain below the overlay, with the key of the
 * backing files. */
static int open_layer(const struct cli_image_spec *spec,
                      const struct commit_layer *l, unsigned flags,
                      struct qcowkit_image **img)
{
    struct cli_image_spec ls;

    memset(&ls, 0, sizeof ls);
    ls.arg = l->path;
    ls.filename = l->path;
    ls.format = l->format;
    ls.key_secret =
        spec->backing_key_secret ? spec->backing_key_secret : spec->key_secret;
    return cli_open_spec(&ls, flags, QCOWKIT_FORMAT_AUTO, 0, img);
}

/*
 * Open the overlay without its chain (its read-only handle of the backing
 * file would lock out the writer below), and base with its own chain,
 * read-write.  Only clusters allocated in the overlay are read, and those
 * never need the backing file.
 */
static int open_commit_pair(const struct cli_image_spec *spec,
                            const struct commit_chain *c,
                            struct qcowkit_image **top,
                            struct qcowkit_image **base)
{
    if (cli_open_spec(spec, QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_BACKING,
                      QCOWKIT_FORMAT_AUTO, 0, top) < 0)
        return -1;
    return open_layer(spec, &c->base, QCOWKIT_OPEN_RDWR, base);
}

/*
 * Copy the images between the overlay and base into base, the lowest
 * first, so that each one's data covers what lies below it, as it does
 * when the overlay is read.  Each is opened alone (its allocated clusters
 * need no backing file).  Past the end of a shorter one the overlay reads
 * zeros: base gets zeros there (up to size, the overlay's size).
 */
static int copy_mids(const struct cli_image_spec *spec,
                     const struct commit_chain *c, uint64_t size,
                     struct qcowkit_image *base, float share)
{
    for (size_t i = c->n_mid; i-- > 0;) {
        const struct commit_layer *l = &c->mid[i];
        struct qcowkit_image *mid;
        uint64_t mid_size;
        int err = 0;

        if (open_layer(spec, l, QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING,
                       &mid) < 0)
            return -1;
        mid_size = cli_image_size(mid);
        if (copy_down(mid, l->path, size, base, c->base.path, share) < 0)
            err = -1;
        qcowkit_close(mid);
        if (err == 0 && mid_size < size)
            err = qcowkit_pwrite_zeroes(base, size - mid_size, mid_size);
        if (err < 0) {
            if (err != -1)
                cli_lib_error(err, c->base.path);
            return -1;
        }
    }
    return 0;
}

/* Grow the base if needed, copy down, and empty the overlay unless -d. */
static int commit_data(const struct commit_args *a,
                       const struct cli_image_spec *spec,
                       const struct commit_chain *c, struct qcowkit_image *top,
                       struct qcowkit_image *base)
{
    /* As QEMU's commit job: a smaller backing file grows to the overlay's
     * size first (QEMU 7.2 cannot resize a qcow backing file). */
    uint64_t top_size = cli_image_size(top);
    float share = 1.0f / (float)(c->n_mid + 1);
    int err = 0;

    if (cli_image_size(base) < top_size)
        err = qcowkit_resize(base, top_size);
    if (err < 0) {
        cli_lib_error(err, NULL);
        return -1;
    }
    cli_progress_print(0, 100);
    if (copy_mids(spec, c, top_size, base, share) < 0 ||
        copy_down(top, spec->filename, top_size, base, c->base.path, share) < 0)
        return -1;
    err = strcmp(a->cache, "unsafe") == 0 ? 0 : qcowkit_flush(base);
    if (err < 0) {
        cli_lib_error(err, c->base.path);
        return -1;
    }
    if (!a->drop) {
        err = qcowkit_make_empty(top);
        if (err == 0)
            err = qcowkit_flush(top);
        if (err < 0) {
            cli_lib_error(err, spec->filename);
            return -1;
        }
    }
    return 0;
}

int cmd_commit(int argc, char **argv)
{
    struct commit_args a;
    enum qcowkit_format format;
    struct cli_image_spec spec;
    struct qcowkit_image *top = NULL, *bimg = NULL;
    struct commit_chain chain;
    int ret = parse_commit_args(argc, argv, &a);

    if (ret != CLI_NEXT_OPTION)
        return ret;
    if (cli_parse_format(a.co.fmt, &format) < 0)
        return 1;
    if (a.rate && !a.co.quiet)
        fprintf(stderr,
                "%s: note: -r %s is accepted and ignored: qcowkit commits "
                "without a rate limit\n",
                CLI_NAME, a.rate);
    if (cli_image_spec_parse(a.image, a.co.image_opts, format, &spec) < 0)
        return 1;
    ret = 1;
    if (find_base(&spec, a.base, &chain) < 0 ||
        open_commit_pair(&spec, &chain, &top, &bimg) < 0)
        goto out;
    cli_progress_init(a.progress, 1.0f);
    if (commit_data(&a, &spec, &chain, top, bimg) == 0)
        ret = 0;
    cli_progress_end();
out:
    if (bimg && qcowkit_close(bimg) < 0 && ret == 0) {
        cli_lib_error(-EIO, chain.base.path);
        ret = 1;
    }
    if (top && qcowkit_close(top) < 0 && ret == 0) {
        cli_lib_error(-EIO, spec.filename);
        ret = 1;
    }
    cli_image_spec_free(&spec);
    commit_chain_free(&chain);
    if (ret == 0 && !a.co.quiet)
        printf("Image committed.\n");
    return ret;
}
