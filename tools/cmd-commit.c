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

/*
 * Find the direct backing file of the image spec names: its resolved path
 * and probed format.  With -b, also check that base names it, and tell
 * apart a deeper image of the chain (not supported) from none at all.
 */
static int find_base(const struct cli_image_spec *spec, const char *base,
                     char **base_path, enum qcowkit_format *base_format)
{
    struct qcowkit_image *top, *layer;
    struct qcowkit_info info, binfo;
    int depth = 0, found = -1, err;

    err = cli_open_spec(spec, QCOWKIT_OPEN_RDONLY, QCOWKIT_FORMAT_AUTO,
                        CLI_OPEN_NO_KEY, &top);
    if (err < 0)
        return -1;
    err = cli_get_info(top, &info);
    if (err < 0 || !qcowkit_backing(top)) {
        if (err < 0)
            cli_lib_error(err, spec->filename);
        else
            cli_error("Image does not have a backing file");
        qcowkit_close(top);
        return -1;
    }
    for (layer = top; qcowkit_backing(layer); layer = qcowkit_backing(layer)) {
        struct qcowkit_info li;
        depth++;
        if (!base)
            break;
        if (cli_get_info(layer, &li) == 0 &&
            same_image(qcowkit_name(layer), li.backing_file, base,
                       li.backing_path)) {
            found = depth;
            break;
        }
    }
    if (base && found < 0) {
        cli_error("Did not find '%s' in the backing chain of '%s'", base,
                  spec->arg);
        qcowkit_close(top);
        return -1;
    }
    if (base && found > 1) {
        cli_error("'%s' is not the direct backing file of '%s': qcowkit "
                  "commits only into the direct backing file (commit the "
                  "layers in between one at a time)",
                  base, spec->arg);
        qcowkit_close(top);
        return -1;
    }
    err = cli_get_info(qcowkit_backing(top), &binfo);
    if (err < 0) {
        cli_lib_error(err, info.backing_path);
        qcowkit_close(top);
        return -1;
    }
    /* A probed backing file is probed again, so that the library keeps
     * guarding its first sector (a raw file must not become qcow). */
    *base_format = binfo.format_probed ? QCOWKIT_FORMAT_AUTO : binfo.format;
    *base_path =
        strdup(info.backing_path[0] ? info.backing_path
                                    : qcowkit_name(qcowkit_backing(top)));
    qcowkit_close(top);
    if (!*base_path) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

/* Copy every cluster allocated in top into base. */
static int copy_down(struct qcowkit_image *top, const char *top_name,
                     struct qcowkit_image *base, const char *base_name)
{
    uint64_t size = cli_image_size(top), offset = 0;
    uint8_t *buf = malloc(IO_BUF_SIZE);
    int err = 0;

    if (!buf) {
        cli_error("out of memory");
        return -1;
    }
    cli_progress_print(0, 100);
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
        cli_progress_print((float)n / (float)size * 100, 100);
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

/*
 * Open the overlay without its chain (its read-only handle of the backing
 * file would lock out the writer below), and the backing file with its
 * own chain, read-write.  Only clusters allocated in the overlay are
 * read, and those never need the backing file.
 */
static int open_commit_pair(const struct cli_image_spec *spec, char *base_path,
                            enum qcowkit_format base_format,
                            struct qcowkit_image **top,
                            struct qcowkit_image **base)
{
    struct cli_image_spec base_spec;

    if (cli_open_spec(spec, QCOWKIT_OPEN_RDWR | QCOWKIT_OPEN_NO_BACKING,
                      QCOWKIT_FORMAT_AUTO, 0, top) < 0)
        return -1;
    memset(&base_spec, 0, sizeof base_spec);
    base_spec.arg = base_path;
    base_spec.filename = base_path;
    base_spec.format = base_format;
    base_spec.key_secret =
        spec->backing_key_secret ? spec->backing_key_secret : spec->key_secret;
    return cli_open_spec(&base_spec, QCOWKIT_OPEN_RDWR, QCOWKIT_FORMAT_AUTO, 0,
                         base);
}

/* Grow the base if needed, copy down, and empty the overlay unless -d. */
static int commit_data(const struct commit_args *a, const char *top_name,
                       struct qcowkit_image *top, const char *base_name,
                       struct qcowkit_image *base)
{
    /* As QEMU's commit job: a smaller backing file grows to the overlay's
     * size first (QEMU 7.2 cannot resize a qcow backing file). */
    uint64_t top_size = cli_image_size(top);
    int err = 0;

    if (cli_image_size(base) < top_size)
        err = qcowkit_resize(base, top_size);
    if (err < 0) {
        cli_lib_error(err, NULL);
        return -1;
    }
    if (copy_down(top, top_name, base, base_name) < 0)
        return -1;
    err = strcmp(a->cache, "unsafe") == 0 ? 0 : qcowkit_flush(base);
    if (err < 0) {
        cli_lib_error(err, base_name);
        return -1;
    }
    if (!a->drop) {
        err = qcowkit_make_empty(top);
        if (err == 0)
            err = qcowkit_flush(top);
        if (err < 0) {
            cli_lib_error(err, top_name);
            return -1;
        }
    }
    return 0;
}

int cmd_commit(int argc, char **argv)
{
    struct commit_args a;
    enum qcowkit_format format, base_format = QCOWKIT_FORMAT_AUTO;
    struct cli_image_spec spec;
    struct qcowkit_image *top = NULL, *bimg = NULL;
    char *base_path = NULL;
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
    if (find_base(&spec, a.base, &base_path, &base_format) < 0 ||
        open_commit_pair(&spec, base_path, base_format, &top, &bimg) < 0)
        goto out;
    cli_progress_init(a.progress, 1.0f);
    if (commit_data(&a, spec.filename, top, base_path, bimg) == 0)
        ret = 0;
    cli_progress_end();
out:
    if (bimg && qcowkit_close(bimg) < 0 && ret == 0) {
        cli_lib_error(-EIO, base_path);
        ret = 1;
    }
    if (top && qcowkit_close(top) < 0 && ret == 0) {
        cli_lib_error(-EIO, spec.filename);
        ret = 1;
    }
    cli_image_spec_free(&spec);
    free(base_path);
    if (ret == 0 && !a.co.quiet)
        printf("Image committed.\n");
    return ret;
}
