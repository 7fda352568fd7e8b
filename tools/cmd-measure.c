/* cmd-measure.c - qcowkit measure: the file size a new image needs
 * (qemu-img measure).  QEMU 7.2 cannot measure for qcow; qcowkit computes
 * it for the layout qcowkit itself writes, with the semantics of qemu-img's
 * qcow2 measure (data allocated anywhere in the source's chain counts,
 * ranges that read as zeros do not). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define QCOW_HEADER_BYTES 48u
#define QCOW_MAX_NAME     1023u
#define SPARSE_UNIT       4096u

struct measure_opts {
    enum qcowkit_format out_format;
    const char *out_name;
    uint32_t cluster_size;
    bool have_size;
    uint64_t size;
    size_t backing_len;
    bool have_backing;
};

/*
 * preallocation= changes no figure: qemu-img measure takes any value for
 * raw (it does not look at it), and for qcow, as for create, off, falloc
 * and full leave the image as it is.  Returns 0 or -1 after printing why.
 */
static int measure_prealloc(const struct measure_opts *o, const char *value)
{
    enum cli_prealloc mode = cli_parse_prealloc(value);

    if (o->out_format != QCOWKIT_FORMAT_QCOW ||
        (mode != CLI_PREALLOC_METADATA && mode != CLI_PREALLOC_UNKNOWN))
        return 0;
    if (mode == CLI_PREALLOC_METADATA)
        cli_error("Unsupported preallocation mode: metadata");
    else
        cli_error("invalid parameter value: %s", value);
    return -1;
}

static int measure_option(void *ctx, const char *key, const char *value)
{
    struct measure_opts *o = ctx;
    uint64_t v;
    const char *why;

    if (!value) {
        cli_error("Invalid parameter '%s'", key);
        return -1;
    }
    if (strcmp(key, "size") == 0) {
        if (cli_parse_size(value, INT64_MAX, &v, &why) < 0) {
            cli_error("Parameter 'size' expects a non-negative number below "
                      "2^64");
            return -1;
        }
        o->size = v;
        o->have_size = true;
        return 0;
    }
    if (strcmp(key, "preallocation") == 0)
        return measure_prealloc(o, value);
    if (o->out_format == QCOWKIT_FORMAT_QCOW) {
        if (strcmp(key, "backing_file") == 0) {
            o->backing_len = strlen(value);
            o->have_backing = o->backing_len > 0;
            return 0;
        }
        if (strcmp(key, "backing_fmt") == 0 || strcmp(key, "encryption") == 0 ||
            strcmp(key, "encrypt.format") == 0 ||
            strcmp(key, "encrypt.key-secret") == 0)
            return 0; /* they do not change the size */
        if (strcmp(key, "cluster_size") == 0) {
            if (cli_parse_size(value, 65536, &v, &why) < 0 || v < 512 ||
                (v & (v - 1)) != 0) {
                cli_error("Invalid cluster_size '%s': must be a power of two "
                          "between 512 and 65536",
                          value);
                return -1;
            }
            o->cluster_size = (uint32_t)v;
            return 0;
        }
    }
    cli_error("Invalid parameter '%s'", key);
    return -1;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* The layout qcowkit_create() and qcowkit's writes give a qcow image. */
struct qcow_geometry {
    uint64_t size;        /* virtual size, a multiple of 512 */
    uint64_t cluster;     /* bytes */
    unsigned l2_shift;    /* bytes covered by one L2 table: 1 << l2_shift */
    uint64_t table_bytes; /* one L2 table, allocated cluster-aligned */
    uint64_t meta;        /* header + backing name + L1 (512-aligned) */
    uint64_t l1_entries;
};

static void qcow_geometry(const struct measure_opts *o, uint64_t size,
                          struct qcow_geometry *g)
{
    uint32_t cs = o->cluster_size   ? o->cluster_size
                  : o->have_backing ? 512
                                    : 4096;
    unsigned bits = 9, l2_bits;

    while ((UINT32_C(1) << bits) < cs)
        bits++;
    l2_bits = bits == 9 ? 12 : bits - 3;
    g->size = align_up(size, 512);
    g->cluster = cs;
    g->l2_shift = bits + l2_bits;
    g->table_bytes = align_up((uint64_t)8 << l2_bits, cs);
    g->l1_entries = (g->size + (UINT64_C(1) << g->l2_shift) - 1) >> g->l2_shift;
    g->meta = align_up(QCOW_HEADER_BYTES + o->backing_len, 8) +
              align_up(g->l1_entries * 8, 512);
}

/*
 * Clusters (of the target) and L2 tables holding data of the source,
 * through its whole chain.  Extents come in ascending order, so counting
 * each index once needs only the last one counted.
 */
static int count_allocated(struct qcowkit_image *src, const char *name,
                           const struct qcow_geometry *g, uint64_t *clusters,
                           uint64_t *tables)
{
    uint64_t size = cli_image_size(src), offset = 0;
    uint64_t last_cluster = UINT64_MAX, last_table = UINT64_MAX;

    *clusters = 0;
    *tables = 0;
    while (offset < size) {
        struct qcowkit_chain_extent st;
        int err = cli_chain_status(src, offset, size - offset, &st);

        if (err < 0) {
            cli_error("Unable to get block status of '%s': %s", name,
                      strerror(-err));
            return -1;
        }
        if ((st.flags & (QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_ZERO)) ==
            QCOWKIT_EXTENT_ALLOCATED) {
            /* convert writes whole 4 KiB blocks (its default -S) that
             * hold any data, whatever the cluster size. */
            uint64_t start = offset / SPARSE_UNIT * SPARSE_UNIT;
            uint64_t end = align_up(offset + st.length, SPARSE_UNIT);
            uint64_t first, last, ft, lt;

            if (end > g->size)
                end = g->size;
            first = start / g->cluster;
            last = (end - 1) / g->cluster;
            ft = start >> g->l2_shift;
            lt = (end - 1) >> g->l2_shift;
            if (last_cluster != UINT64_MAX && first <= last_cluster)
                first = last_cluster + 1;
            if (last >= first) {
                *clusters += last - first + 1;
                last_cluster = last;
            }
            if (last_table != UINT64_MAX && ft <= last_table)
                ft = last_table + 1;
            if (lt >= ft) {
                *tables += lt - ft + 1;
                last_table = lt;
            }
        }
        offset += st.length;
    }
    return 0;
}

static void print_result(bool json, uint64_t required, uint64_t full)
{
    if (json)
        printf("{\n    \"required\": %" PRIu64
               ",\n    \"fully-allocated\": %" PRIu64 "\n}\n",
               required, full);
    else
        printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64
               "\n",
               required, full);
}

enum { OPT_SIZE = 256 };
static const struct option measure_longopts[] = {
    CLI_LONGOPT_HELP,
    CLI_LONGOPT_IMAGE_OPTS,
    CLI_LONGOPT_OBJECT,
    CLI_LONGOPT_OUTPUT,
    {"size", required_argument, NULL, OPT_SIZE},
    CLI_LONGOPT_FORCE_SHARE,
    {NULL, 0, NULL, 0},
};
#define MEASURE_OPTSTRING ":hf:O:o:l:U"

struct measure_args {
    struct cli_common co;
    const char *out_fmt, *filename;
    bool json, snapshot, have_img_size;
    uint64_t img_size;
};

/* Returns CLI_NEXT_OPTION when the measure is to run, else the exit code. */
static int parse_measure_args(int argc, char **argv, struct measure_args *a)
{
    const char *why;
    int c, ret;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "measure");
    a->out_fmt = "raw";
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, MEASURE_OPTSTRING, measure_longopts,
                            NULL)) != -1) {
        if (c == 'O')
            a->out_fmt = optarg;
        else if (c == 'o')
            continue; /* parsed once the output format is known */
        else if (c == 'l')
            a->snapshot = true;
        else if (c == CLI_OPT_OUTPUT) {
            if (cli_parse_output(optarg, &a->json) < 0)
                return 1;
        } else if (c == OPT_SIZE) {
            if (cli_parse_size(optarg, INT64_MAX, &a->img_size, &why) < 0) {
                cli_error("Invalid image size specified: '%s': %s", optarg,
                          why);
                return 1;
            }
            a->have_img_size = true;
        } else if ((ret = cli_common_option(&a->co, argv, c)) !=
                   CLI_NEXT_OPTION)
            return ret;
    }
    if (argc - optind > 1) {
        cli_error("At most one filename argument is allowed.");
        return 1;
    }
    if (argc - optind == 1)
        a->filename = argv[optind];
    return CLI_NEXT_OPTION;
}

/* The arguments that exclude each other; prints why and returns -1. */
static int check_measure_args(const struct measure_args *a)
{
    if (!a->filename && (a->co.image_opts || a->co.fmt || a->snapshot)) {
        cli_error("--image-opts, -f, and -l require a filename argument.");
        return -1;
    }
    if (a->filename && a->have_img_size) {
        cli_error("--size N cannot be used together with a filename.");
        return -1;
    }
    if (!a->filename && !a->have_img_size) {
        cli_error("Either --size N or one filename must be specified.");
        return -1;
    }
    if (a->snapshot) {
        cli_error("Snapshots are not supported by qcow images");
        return -1;
    }
    return 0;
}

/* The -o options, in a second pass once the output format is known. */
static int parse_measure_opts(int argc, char **argv, const char *out_fmt,
                              struct measure_opts *o)
{
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, MEASURE_OPTSTRING, measure_longopts,
                            NULL)) != -1) {
        if (c == 'o' && cli_parse_opts(optarg, measure_option, o) < 0) {
            cli_error("Invalid options for file format '%s'", out_fmt);
            return -1;
        }
    }
    return 0;
}

/* Required and fully allocated sizes of a qcow image for src (or size). */
static int measure_qcow(const struct measure_opts *o, struct qcowkit_image *src,
                        const char *filename, uint64_t size, uint64_t *required,
                        uint64_t *full)
{
    struct qcow_geometry g;
    uint64_t clusters = 0, tables = 0, all_clusters;

    if (o->backing_len > QCOW_MAX_NAME) {
        cli_error("Backing file name of %zu bytes exceeds %u", o->backing_len,
                  QCOW_MAX_NAME);
        return -1;
    }
    qcow_geometry(o, size, &g);
    if (src && count_allocated(src, filename, &g, &clusters, &tables) < 0)
        return -1;
    *required = g.meta;
    if (clusters)
        *required = align_up(g.meta, g.cluster) + tables * g.table_bytes +
                    clusters * g.cluster;
    all_clusters = (g.size + g.cluster - 1) / g.cluster;
    *full = g.meta;
    if (all_clusters)
        *full = align_up(g.meta, g.cluster) + g.l1_entries * g.table_bytes +
                all_clusters * g.cluster;
    return 0;
}

int cmd_measure(int argc, char **argv)
{
    struct measure_args a;
    struct measure_opts o;
    enum qcowkit_format format;
    struct qcowkit_image *src = NULL;
    uint64_t size, required, full;
    int ret = parse_measure_args(argc, argv, &a);

    if (ret != CLI_NEXT_OPTION)
        return ret;
    if (check_measure_args(&a) < 0 || cli_parse_format(a.co.fmt, &format) < 0)
        return 1;
    if (a.filename &&
        cli_open_image(a.filename, a.co.image_opts, format,
                       QCOWKIT_OPEN_RDONLY |
                           (a.co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0),
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NO_KEY, &src, NULL) < 0)
        return 1;
    ret = 1;
    memset(&o, 0, sizeof o);
    if (cli_parse_format(a.out_fmt, &o.out_format) < 0 ||
        parse_measure_opts(argc, argv, a.out_fmt, &o) < 0)
        goto out;
    size = src ? cli_image_size(src) : a.img_size;
    if (o.out_format == QCOWKIT_FORMAT_RAW) {
        /* raw: the source's length, or --size rounded up to a sector. */
        required = src ? size : align_up(size, 512);
        full = required;
    } else if (measure_qcow(&o, src, a.filename, size, &required, &full) < 0) {
        goto out;
    }
    print_result(a.json, required, full);
    ret = 0;
out:
    qcowkit_close(src);
    return ret;
}
