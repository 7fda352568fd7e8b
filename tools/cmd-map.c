/* cmd-map.c - qcowkit map: where the guest data lies (qemu-img map). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct map_entry {
    uint64_t start, length;
    bool data, zero, present, has_offset;
    uint64_t offset;
    int depth;
    const char *filename; /* NULL unless has_offset */
};

static bool mergeable(const struct map_entry *curr,
                      const struct map_entry *next)
{
    if (curr->length == 0)
        return false;
    if (curr->zero != next->zero || curr->data != next->data ||
        curr->depth != next->depth || curr->present != next->present ||
        !curr->filename != !next->filename ||
        curr->has_offset != next->has_offset)
        return false;
    if (curr->filename && strcmp(curr->filename, next->filename) != 0)
        return false;
    if (curr->has_offset && curr->offset + curr->length != next->offset)
        return false;
    return true;
}

/* Print one entry; may normalise next (human output), as qemu-img does. */
static int dump_entry(bool json, const struct map_entry *e,
                      struct map_entry *next)
{
    if (json) {
        printf("{ \"start\": %" PRIu64 ", \"length\": %" PRIu64
               ", \"depth\": %d, \"present\": %s, \"zero\": %s, \"data\": %s",
               e->start, e->length, e->depth, e->present ? "true" : "false",
               e->zero ? "true" : "false", e->data ? "true" : "false");
        if (e->has_offset)
            printf(", \"offset\": %" PRIu64, e->offset);
        putchar('}');
        if (next)
            puts(",");
        return 0;
    }
    if (e->data && !e->has_offset) {
        cli_error("File contains external, encrypted or compressed "
                  "clusters.");
        return -EINVAL;
    }
    if (e->data && !e->zero)
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start,
               e->length, e->has_offset ? e->offset : 0,
               e->filename ? e->filename : "");
    /* Human output does not tell zero from unallocated: merge them. */
    if (next && (!next->data || next->zero) && (!e->data || e->zero)) {
        next->data = false;
        next->zero = true;
    }
    return 0;
}

static int entry_at(struct qcowkit_image *img, uint64_t offset, uint64_t count,
                    struct map_entry *e)
{
    struct qcowkit_chain_extent x;
    int err = cli_chain_status(img, offset, count, &x);

    if (err < 0)
        return err;
    memset(e, 0, sizeof *e);
    e->start = offset;
    e->length = x.length;
    e->zero = x.flags & QCOWKIT_EXTENT_ZERO;
    e->present = x.flags & QCOWKIT_EXTENT_ALLOCATED;
    /* A raw hole is present but reads as zeros, as QEMU reports it. */
    e->data = e->present && !e->zero;
    e->has_offset = x.flags & QCOWKIT_EXTENT_HOST_OFFSET;
    e->offset = x.host_offset;
    e->depth = (int)x.depth;
    e->filename = e->has_offset ? qcowkit_name(x.layer) : NULL;
    return 0;
}

/* Print the map of [start, length) of img. */
static int dump_map(struct qcowkit_image *img, uint64_t start, uint64_t length,
                    bool json)
{
    struct map_entry curr, next;
    int err;

    if (json)
        putchar('[');
    else
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");

    memset(&curr, 0, sizeof curr);
    curr.start = start;
    while (curr.start + curr.length < length) {
        uint64_t offset = curr.start + curr.length;

        /* The library bounds each call's work, not its length: long runs
         * of nothing cost one call (runs are merged as qemu-img does). */
        err = entry_at(img, offset, length - offset, &next);
        if (err < 0) {
            cli_lib_error(err, "Could not read file metadata");
            return -1;
        }
        if (mergeable(&curr, &next)) {
            curr.length += next.length;
            continue;
        }
        if (curr.length > 0 && dump_entry(json, &curr, &next) < 0)
            return -1;
        curr = next;
    }
    if (dump_entry(json, &curr, NULL) < 0)
        return -1;
    if (json)
        puts("]");
    return 0;
}

int cmd_map(int argc, char **argv)
{
    enum { OPT_START = 256, OPT_MAX_LEN };
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,
        CLI_LONGOPT_FORMAT,
        CLI_LONGOPT_OUTPUT,
        {"start-offset", required_argument, NULL, OPT_START},
        {"max-length", required_argument, NULL, OPT_MAX_LEN},
        CLI_LONGOPT_FORCE_SHARE,
        CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_OBJECT,
        {NULL, 0, NULL, 0},
    };
    struct cli_common co;
    enum qcowkit_format format;
    struct qcowkit_image *img = NULL;
    uint64_t start = 0, max_len = INT64_MAX, length;
    bool json;
    int c, ret;

    cli_common_init(&co, "map");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:hU", longopts, NULL)) != -1) {
        if (c == OPT_START) {
            if (cli_parse_size_arg(optarg, "start offset", &start) < 0)
                return 1;
        } else if (c == OPT_MAX_LEN) {
            if (cli_parse_size_arg(optarg, "max length", &max_len) < 0)
                return 1;
        } else if ((ret = cli_common_option(&co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    if (optind != argc - 1)
        return cli_usage_error("map", "Expecting one image file name");
    if (cli_parse_output(co.output, &json) < 0)
        return 1;
    if (cli_parse_format(co.fmt, &format) < 0)
        return 1;
    /* As qemu-img, an encrypted image opens only with its key (although
     * block status alone would not need it). */
    if (cli_open_image(argv[optind], co.image_opts, format,
                       QCOWKIT_OPEN_RDONLY |
                           (co.force_share ? QCOWKIT_OPEN_FORCE_SHARE : 0),
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &img, NULL) < 0)
        return 1;

    length = cli_image_size(img);
    if (max_len < length - (start < length ? start : length))
        length = start + max_len;
    ret = dump_map(img, start, length, json) < 0 ? 1 : 0;
    fflush(stdout);
    qcowkit_close(img);
    return ret;
}
