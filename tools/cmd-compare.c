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

static bool quiet;

static void qprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void qprintf(const char *fmt, ...)
{
    va_list ap;

    if (quiet)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

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
        qprintf("Content mismatch at offset %" PRIu64 "!\n",
                offset + (uint64_t)idx);
        return 1;
    }
    return 0;
}

static int compare_images(struct qcowkit_image *img1, const char *name1,
                          struct qcowkit_image *img2, const char *name2,
                          bool strict)
{
    uint64_t size1 = cli_image_size(img1), size2 = cli_image_size(img2);
    uint64_t total = size1 < size2 ? size1 : size2;
    uint64_t base = size1 > size2 ? size1 : size2;
    uint64_t offset = 0;
    uint8_t *buf1 = malloc(IO_BUF_SIZE), *buf2 = malloc(IO_BUF_SIZE);
    int ret = 0, err;

    if (!buf1 || !buf2) {
        cli_error("out of memory");
        ret = 4;
        goto out;
    }
    cli_progress_print(0, 100);
    if (strict && size1 != size2) {
        qprintf("Strict mode: Image size mismatch!\n");
        ret = 1;
        goto out;
    }
    while (offset < total) {
        struct qcowkit_chain_extent s1, s2;
        uint64_t chunk;
        bool alloc1, alloc2;

        err = cli_chain_status(img1, offset, total - offset, &s1);
        if (err < 0) {
            cli_error("Sector allocation test failed for %s", name1);
            ret = 3;
            goto out;
        }
        err = cli_chain_status(img2, offset, total - offset, &s2);
        if (err < 0) {
            cli_error("Sector allocation test failed for %s", name2);
            ret = 3;
            goto out;
        }
        alloc1 = s1.flags & QCOWKIT_EXTENT_ALLOCATED;
        alloc2 = s2.flags & QCOWKIT_EXTENT_ALLOCATED;
        chunk = s1.length < s2.length ? s1.length : s2.length;
        if (strict && (s1.flags & ~QCOWKIT_EXTENT_COMPRESSED) !=
                          (s2.flags & ~QCOWKIT_EXTENT_COMPRESSED)) {
            qprintf("Strict mode: Offset %" PRIu64 " block status mismatch!\n",
                    offset);
            ret = 1;
            goto out;
        }
        if ((s1.flags & s2.flags) & QCOWKIT_EXTENT_ZERO) {
            /* both read as zeros */
        } else if (alloc1 == alloc2) {
            if (alloc1) {
                uint64_t at;
                if (chunk > IO_BUF_SIZE)
                    chunk = IO_BUF_SIZE;
                err = qcowkit_pread(img1, buf1, chunk, offset);
                if (err < 0) {
                    cli_error("Error while reading offset %" PRIu64
                              " of %s: %s",
                              offset, name1, qcowkit_errmsg());
                    ret = 4;
                    goto out;
                }
                err = qcowkit_pread(img2, buf2, chunk, offset);
                if (err < 0) {
                    cli_error("Error while reading offset %" PRIu64
                              " of %s: %s",
                              offset, name2, qcowkit_errmsg());
                    ret = 4;
                    goto out;
                }
                at = first_difference(buf1, buf2, chunk);
                if (at != chunk) {
                    qprintf("Content mismatch at offset %" PRIu64 "!\n",
                            offset + at);
                    ret = 1;
                    goto out;
                }
            }
        } else {
            if (chunk > IO_BUF_SIZE)
                chunk = IO_BUF_SIZE;
            ret = alloc1 ? check_empty(img1, offset, chunk, name1, buf1)
                         : check_empty(img2, offset, chunk, name2, buf1);
            if (ret)
                goto out;
        }
        offset += chunk;
        cli_progress_print((float)chunk / (float)base * 100, 100);
    }

    if (size1 != size2) {
        struct qcowkit_image *over = size1 > size2 ? img1 : img2;
        const char *over_name = size1 > size2 ? name1 : name2;

        qprintf("Warning: Image size mismatch!\n");
        while (offset < base) {
            struct qcowkit_chain_extent s;
            uint64_t chunk;

            err = cli_chain_status(over, offset, base - offset, &s);
            if (err < 0) {
                cli_error("Sector allocation test failed for %s", over_name);
                ret = 3;
                goto out;
            }
            chunk = s.length;
            if ((s.flags & (QCOWKIT_EXTENT_ALLOCATED | QCOWKIT_EXTENT_ZERO)) ==
                QCOWKIT_EXTENT_ALLOCATED) {
                if (chunk > IO_BUF_SIZE)
                    chunk = IO_BUF_SIZE;
                ret = check_empty(over, offset, chunk, over_name, buf1);
                if (ret)
                    goto out;
            }
            offset += chunk;
            cli_progress_print((float)chunk / (float)base * 100, 100);
        }
    }
    qprintf("Images are identical.\n");
    ret = 0;
out:
    free(buf1);
    free(buf2);
    return ret;
}

int cmd_compare(int argc, char **argv)
{
    enum { OPT_IMAGE_OPTS = 256, OPT_OBJECT };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"force-share", no_argument, NULL, 'U'},
        {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
        {"object", required_argument, NULL, OPT_OBJECT},
        {NULL, 0, NULL, 0},
    };
    const char *fmt1 = NULL, *fmt2 = NULL;
    enum qcowkit_format format1, format2;
    struct qcowkit_image *img1 = NULL, *img2 = NULL;
    char *name1 = NULL, *name2 = NULL;
    unsigned open_flags = QCOWKIT_OPEN_RDONLY;
    bool strict = false, progress = false, image_opts = false;
    int c, ret;

    quiet = false;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt1 = optarg;
            break;
        case 'F':
            fmt2 = optarg;
            break;
        case 'T':
            break; /* the source cache mode does not change results */
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            strict = true;
            break;
        case 'U':
            open_flags |= QCOWKIT_OPEN_FORCE_SHARE;
            break;
        case 'h':
            printf("usage: %s %s\n", CLI_NAME, cli_usage("compare"));
            return 0;
        case OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPT_OBJECT:
            if (cli_object_add(optarg) < 0)
                return 2;
            break;
        default:
            return cli_bad_option("compare", argv, c);
        }
    }
    /* Progress is not shown in quiet mode. */
    if (quiet)
        progress = false;
    if (optind != argc - 2)
        return cli_usage_error("compare", "Expecting two image file names");
    if (cli_parse_format(fmt1, &format1) < 0 ||
        cli_parse_format(fmt2, &format2) < 0)
        return 2;
    if (cli_open_image(argv[optind], image_opts, format1, open_flags,
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &img1,
                       &name1) < 0)
        return 2;
    if (cli_open_image(argv[optind + 1], image_opts, format2, open_flags,
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
