/* cmd-compare.c - qcowkit compare: do two images hold the same data?
 * Exit codes as qemu-img compare: 0 identical, 1 different, 2 an image
 * could not be opened, 3 allocation could not be checked, 4 a read
 * failed. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define IO_BUF_SIZE (2u << 20)
#define SECTOR      512u

/* Index of the first 512-byte piece that differs (len if none). */
static uint64_t first_difference(const uint8_t *a, const uint8_t *b,
                                 uint64_t len)
{
    uint64_t i;

    for (i = 0; i < len; i += SECTOR) {
        uint64_t n = len - i < SECTOR ? len - i : SECTOR;
        if (memcmp(a + i, b + i, n) != 0)
            return i;
    }
    return len;
}

/* Index of the first 512-byte piece that is not all zero, or -1. */
static int64_t first_nonzero(const uint8_t *buf, uint64_t len)
{
    uint64_t i;

    for (i = 0; i < len; i += SECTOR) {
        uint64_t n = len - i < SECTOR ? len - i : SECTOR;
        if (!cli_is_zero(buf + i, n))
            return (int64_t)i;
    }
    return -1;
}

/* 0: all zero; 1: mismatch printed; 4: read error. */
static int check_empty(struct qcowkit_image *img, uint64_t offset, uint64_t len,
                       const char *filename, uint8_t *buf)
{
    int64_t idx;
    int err = qcowkit_pread(img, buf, len, offset);

    if (err < 0) {
        cli_error("Error while reading offset %" PRIu64 " of %s: %s", offset,
                  filename, qcowkit_errmsg());
        return 4;
    }
    idx = first_nonzero(buf, len);
    if (idx >= 0) {
        cli_qprintf("Content mismatch at offset %" PRIu64 "!\n",
                    offset + (uint64_t)idx);
        return 1;
    }
    return 0;
}

struct compare_ctx {
    struct qcowkit_image *img1, *img2;
    const char *name1, *name2;
    uint8_t *buf1, *buf2;
    uint64_t base; /* the larger size, for the progress meter */
    bool strict;
};

static int read_error(uint64_t offset, const char *name)
{
    cli_error("Error while reading offset %" PRIu64 " of %s: %s", offset, name,
              qcowkit_errmsg());
    return 4;
}

/* Both images hold [offset, offset+chunk): 0 same, 1 differs, 4 error. */
static int compare_data(struct compare_ctx *c, uint64_t offset, uint64_t chunk)
{
    uint64_t at;

    if (qcowkit_pread(c->img1, c->buf1, chunk, offset) < 0)
        return read_error(offset, c->name1);
    if (qcowkit_pread(c->img2, c->buf2, chunk, offset) < 0)
        return read_error(offset, c->name2);
    at = first_difference(c->buf1, c->buf2, chunk);
    if (at != chunk) {
        cli_qprintf("Content mismatch at offset %" PRIu64 "!\n", offset + at);
        return 1;
    }
    return 0;
}

/*
 * One run from offset inside both images: *chunk gets its length.
 * Returns 0 when it reads the same, else qemu-img's exit code.
 */
static int compare_run(struct compare_ctx *c, uint64_t offset, uint64_t total,
                       uint64_t *chunk)
{
    struct qcowkit_chain_extent s1, s2;
    bool alloc1, alloc2;

    if (cli_chain_status(c->img1, offset, total - offset, &s1) < 0) {
        cli_error("Sector allocation test failed for %s", c->name1);
        return 3;
    }
    if (cli_chain_status(c->img2, offset, total - offset, &s2) < 0) {
        cli_error("Sector allocation test failed for %s", c->name2);
        return 3;
    }
    alloc1 = s1.flags & QCOWKIT_EXTENT_ALLOCATED;
    alloc2 = s2.flags & QCOWKIT_EXTENT_ALLOCATED;
    *chunk = s1.length < s2.length ? s1.length : s2.length;
    if (c->strict && (s1.flags & ~QCOWKIT_EXTENT_COMPRESSED) !=
                         (s2.flags & ~QCOWKIT_EXTENT_COMPRESSED)) {
        cli_qprintf("Strict mode: Offset %" PRIu64 " block status mismatch!\n",
                    offset);
        return 1;
    }
    if ((s1.flags & s2.flags) & QCOWKIT_EXTENT_ZERO)
        return 0; /* both read as zeros */
    if (alloc1 == alloc2 && !alloc1)
        return 0;
    if (*chunk > IO_BUF_SIZE)
        *chunk = IO_BUF_SIZE;
    if (alloc1 == alloc2)
        return compare_data(c, offset, *chunk);
    return alloc1 ? check_empty(c->img1, offset, *chunk, c->name1, c->buf1)
                  : check_empty(c->img2, offset, *chunk, c->name2, c->buf1);
}

/* Past the end of the smaller image, the larger must read as zeros. */
static int compare_tail(struct compare_ctx *c, struct qcowkit_image *over,
                        const char *over_name, uint64_t offset)
{
    cli_qprintf("Warning: Image size mismatch!\n");
    while (offset < c->base) {
        struct qcowkit_chain_extent s;
        uint64_t chunk;
        int ret;

        if (cli_chain_status(over, offset, c->base - offset, &s) < 0) {
            cli_error("Sector allocation test failed for %s", over_name);
            return 3;
        }
        chunk = s.length;
        if ((s.flags & (QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_ZERO)) ==
            QCOWKIT_EXTENT_ALLOCATED) {
            if (chunk > IO_BUF_SIZE)
                chunk = IO_BUF_SIZE;
            ret = check_empty(over, offset, chunk, over_name, c->buf1);
            if (ret)
                return ret;
        }
        offset += chunk;
        cli_progress_print((float)chunk / (float)c->base * 100, 100);
    }
    return 0;
}

static int compare_all(struct compare_ctx *c, uint64_t size1, uint64_t size2)
{
    uint64_t total = size1 < size2 ? size1 : size2, offset = 0, chunk;
    int ret;

    cli_progress_print(0, 100);
    if (c->strict && size1 != size2) {
        cli_qprintf("Strict mode: Image size mismatch!\n");
        return 1;
    }
    while (offset < total) {
        ret = compare_run(c, offset, total, &chunk);
        if (ret)
            return ret;
        offset += chunk;
        cli_progress_print((float)chunk / (float)c->base * 100, 100);
    }
    if (size1 != size2) {
        ret = size1 > size2 ? compare_tail(c, c->img1, c->name1, offset)
                            : compare_tail(c, c->img2, c->name2, offset);
        if (ret)
            return ret;
    }
    cli_qprintf("Images are identical.\n");
    return 0;
}

static int compare_images(struct qcowkit_image *img1, const char *name1,
                          struct qcowkit_image *img2, const char *name2,
                          bool strict)
{
    uint64_t size1 = cli_image_size(img1), size2 = cli_image_size(img2);
    struct compare_ctx c = {
        .img1 = img1,
        .img2 = img2,
        .name1 = name1,
        .name2 = name2,
        .buf1 = malloc(IO_BUF_SIZE),
        .buf2 = malloc(IO_BUF_SIZE),
        .base = size1 > size2 ? size1 : size2,
        .strict = strict,
    };
    int ret;

    if (!c.buf1 || !c.buf2) {
        cli_error("out of memory");
        ret = 4;
    } else {
        ret = compare_all(&c, size1, size2);
    }
    free(c.buf1);
    free(c.buf2);
    return ret;
}

int cmd_compare(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,   CLI_LONGOPT_FORCE_SHARE, CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_OBJECT, {NULL, 0, NULL, 0},
    };
    struct cli_common co;
    const char *fmt2 = NULL;
    enum qcowkit_format format1, format2;
    struct qcowkit_image *img1 = NULL, *img2 = NULL;
    char *name1 = NULL, *name2 = NULL;
    unsigned open_flags = QCOWKIT_OPEN_RDONLY;
    bool strict = false, progress = false;
    int c, ret;

    cli_quiet = false;
    cli_common_init(&co, "compare");
    co.fail = 2;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", longopts, NULL)) !=
           -1) {
        if (c == 'F')
            fmt2 = optarg;
        else if (c == 'T')
            continue; /* the source cache mode does not change results */
        else if (c == 'p')
            progress = true;
        else if (c == 's')
            strict = true;
        else if ((ret = cli_common_option(&co, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    }
    cli_quiet = co.quiet;
    if (co.force_share)
        open_flags |= QCOWKIT_OPEN_FORCE_SHARE;
    /* Progress is not shown in quiet mode. */
    if (cli_quiet)
        progress = false;
    if (optind != argc - 2)
        return cli_usage_error("compare", "Expecting two image file names");
    if (cli_parse_format(co.fmt, &format1) < 0 ||
        cli_parse_format(fmt2, &format2) < 0)
        return 2;
    if (cli_open_image(argv[optind], co.image_opts, format1, open_flags,
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &img1,
                       &name1) < 0)
        return 2;
    if (cli_open_image(argv[optind + 1], co.image_opts, format2, open_flags,
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &img2,
                       &name2) < 0) {
        qcowkit_close(img1);
        free(name1);
        return 2;
    }
    cli_progress_init(progress, 2.0f);
    ret = compare_images(img1, name1, img2, name2, strict);
    cli_progress_end();
    qcowkit_close(img2);
    qcowkit_close(img1);
    free(name1);
    free(name2);
    return ret;
}
