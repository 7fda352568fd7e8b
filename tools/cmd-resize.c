/* cmd-resize.c - qcowkit resize: change the virtual size of an image
 * (qemu-img resize).  QEMU 7.2 cannot resize qcow images; qcowkit can. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_resize(int argc, char **argv)
{
    enum {
        OPT_OBJECT = 256,
        OPT_IMAGE_OPTS,
        OPT_PREALLOCATION,
        OPT_SHRINK,
    };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"object", required_argument, NULL, OPT_OBJECT},
        {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
        {"preallocation", required_argument, NULL, OPT_PREALLOCATION},
        {"shrink", no_argument, NULL, OPT_SHRINK},
        {NULL, 0, NULL, 0},
    };
    const char *fmt = NULL, *size_arg, *prealloc = NULL, *why = "";
    enum qcowkit_format format;
    struct qcowkit_image *img = NULL;
    struct qcowkit_info info;
    bool quiet = false, image_opts = false, shrink = false;
    int relative = 0, c, err, ret = 1;
    uint64_t n, current, total;

    /* As qemu-img: the size is taken off the end before the options are
     * parsed, so that "-1G" is not taken for an option. */
    if (argc < 3) {
        cli_usage_error("resize", "Not enough arguments");
        return 1;
    }
    size_arg = argv[--argc];
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:hq", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            printf("usage: %s %s\n", CLI_NAME, cli_usage("resize"));
            return 0;
        case OPT_OBJECT:
            if (cli_object_add(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPT_PREALLOCATION:
            prealloc = optarg;
            break;
        case OPT_SHRINK:
            shrink = true;
            break;
        default:
            return cli_bad_option("resize", argv, c);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("resize", "Expecting image file name and size");
    if (prealloc && strcmp(prealloc, "off") != 0) {
        if (strcmp(prealloc, "metadata") != 0 &&
            strcmp(prealloc, "falloc") != 0 && strcmp(prealloc, "full") != 0) {
            cli_error("Invalid parameter '%s'", prealloc);
            return 1;
        }
        cli_error("Unsupported preallocation mode '%s' (qcowkit supports "
                  "only 'off')",
                  prealloc);
        return 1;
    }
    if (size_arg[0] == '+') {
        relative = 1;
        size_arg++;
    } else if (size_arg[0] == '-') {
        relative = -1;
        size_arg++;
    }
    if (cli_parse_size(size_arg, UINT64_MAX, &n, &why) < 0) {
        cli_error("Parameter 'size' expects a non-negative number below 2^64 "
                  "(optional suffix k, M, G, T, P or E)");
        return 1;
    }
    if (cli_parse_format(fmt, &format) < 0)
        return 1;
    if (cli_open_image(argv[optind], image_opts, format, QCOWKIT_OPEN_RDWR,
                       QCOWKIT_FORMAT_AUTO, 0, &img, NULL) < 0)
        return 1;
    err = cli_get_info(img, &info);
    if (err < 0) {
        cli_lib_error(err, argv[optind]);
        goto out;
    }
    /* QEMU sees whole sectors: a raw file's length is rounded up. */
    current = (info.virtual_size + 511) / 512 * 512;
    if (relative > 0)
        total = n > INT64_MAX - current ? UINT64_MAX : current + n;
    else if (relative < 0)
        total = n >= current ? 0 : current - n;
    else
        total = n;
    if (total == 0 || total > INT64_MAX) {
        cli_error(total ? "Image size must be less than 8 EiB!"
                        : "New image size must be positive");
        goto out;
    }
    if (total <= current && prealloc && strcmp(prealloc, "off") != 0) {
        cli_error("Preallocation can only be used for growing images");
        goto out;
    }
    if (total < current && !shrink) {
        cli_error("Use the --shrink option to perform a shrink operation.");
        fprintf(stderr,
                "%s: warning: Shrinking an image will delete all data beyond "
                "the shrunken image's end. Before performing such an "
                "operation, make sure there is no important data there.\n",
                CLI_NAME);
        goto out;
    }
    /* qemu-img resizes exactly; a qcow image's size is a multiple of 512. */
    if (info.format == QCOWKIT_FORMAT_QCOW && total % 512) {
        cli_error("The new size must be a multiple of 512");
        goto out;
    }
    err = qcowkit_resize(img, total);
    if (err == 0)
        err = qcowkit_flush(img);
    if (err < 0) {
        cli_lib_error(err, NULL);
        goto out;
    }
    if (!quiet)
        printf("Image resized.\n");
    ret = 0;
out:
    if (img && qcowkit_close(img) < 0 && ret == 0) {
        cli_lib_error(-EIO, argv[optind]);
        ret = 1;
    }
    return ret;
}
