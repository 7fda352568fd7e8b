/*
 * main.c - qcowkit nbd: export an image over NBD, as qemu-nbd does.
 *
 *   qcowkit nbd [-f FMT] [-r] [-x NAME] [-k SOCKET | -p PORT [-b ADDR]]
 *               [-e SHARED] [-t] [--pid-file=FILE] [-D DESCRIPTION] [-U]
 *               [-v] [--handshake-limit=N] [--max-memory=SIZE]
 *               [--object SPEC]... [--image-opts] FILE
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "protocol.h"
#include "server.h"

enum {
    OPT_PID_FILE = 256,
    OPT_OBJECT,
    OPT_IMAGE_OPTS,
    OPT_HANDSHAKE_LIMIT,
    OPT_MAX_MEMORY,
};

static const struct option long_options[] = {
    {"format", required_argument, NULL, 'f'},
    {"read-only", no_argument, NULL, 'r'},
    {"export-name", required_argument, NULL, 'x'},
    {"socket", required_argument, NULL, 'k'},
    {"port", required_argument, NULL, 'p'},
    {"bind", required_argument, NULL, 'b'},
    {"shared", required_argument, NULL, 'e'},
    {"persistent", no_argument, NULL, 't'},
    {"pid-file", required_argument, NULL, OPT_PID_FILE},
    {"description", required_argument, NULL, 'D'},
    {"force-share", no_argument, NULL, 'U'},
    {"verbose", no_argument, NULL, 'v'},
    {"object", required_argument, NULL, OPT_OBJECT},
    {"image-opts", no_argument, NULL, OPT_IMAGE_OPTS},
    {"handshake-limit", required_argument, NULL, OPT_HANDSHAKE_LIMIT},
    {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void help(void)
{
    printf("usage: %s %s\n\n", CLI_NAME, cli_usage("nbd"));
    printf("Export FILE over NBD (fixed newstyle; structured replies, "
           "base:allocation).\n"
           "  -k, --socket=PATH      listen on a unix socket\n"
           "  -p, --port=PORT        listen on a TCP port (default 10809)\n"
           "  -b, --bind=ADDR        TCP address (default 0.0.0.0)\n"
           "  -x, --export-name=NAME export name (default \"\")\n"
           "  -D, --description=TEXT export description\n"
           "  -r, --read-only        refuse writes\n"
           "  -e, --shared=NUM       clients at once (default 1, 0: no "
           "limit)\n"
           "  -t, --persistent       keep serving after the last client\n"
           "      --pid-file=PATH    write the pid once listening\n"
           "  -U, --force-share      no image locks (needs -r)\n"
           "  -v, --verbose          say why a client was dropped\n"
           "      --handshake-limit=N  seconds a client has for the whole "
           "handshake\n"
           "                         (default 10, 0: no limit)\n"
           "      --max-memory=SIZE  requests in flight over all clients "
           "(default 256M)\n");
}

static int parse_seconds(const char *arg, unsigned *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 0 || v > 86400) {
        cli_error("Invalid handshake limit '%s' (0 to 86400 seconds)", arg);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int cmd_nbd(int argc, char **argv)
{
    struct nbd_server_opts so;
    struct nbd_export *exp = NULL;
    enum qcowkit_format format = QCOWKIT_FORMAT_AUTO;
    const char *fmt_name = NULL, *name = "", *desc = NULL;
    bool read_only = false, force_share = false, image_opts = false;
    struct qcowkit_image *img = NULL;
    unsigned flags;
    int c, rc = 1, err;

    memset(&so, 0, sizeof so);
    so.shared = 1;
    so.handshake_limit = NBD_HANDSHAKE_SECS;
    so.max_memory = NBD_MAX_MEMORY;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:rx:k:p:b:e:tD:Uvh", long_options,
                            NULL)) != -1) {
        switch (c) {
        case 'f':
            fmt_name = optarg;
            break;
        case 'r':
            read_only = true;
            break;
        case 'x':
            name = optarg;
            break;
        case 'k':
            so.socket_path = optarg;
            break;
        case 'p':
            so.port = optarg;
            break;
        case 'b':
            so.bind_addr = optarg;
            break;
        case 'e': {
            char *end;
            long v;

            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 0 || v > 65536) {
                cli_error("Invalid shared device number '%s'", optarg);
                return 1;
            }
            so.shared = (unsigned)v;
            break;
        }
        case 't':
            so.persistent = true;
            break;
        case OPT_PID_FILE:
            so.pid_file = optarg;
            break;
        case 'D':
            desc = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case 'v':
            so.verbose = true;
            break;
        case OPT_HANDSHAKE_LIMIT:
            if (parse_seconds(optarg, &so.handshake_limit) < 0)
                return 1;
            break;
        case OPT_MAX_MEMORY: {
            const char *why;

            if (cli_parse_size(optarg, UINT64_C(1) << 40, &so.max_memory,
                               &why) < 0 ||
                so.max_memory < NBD_MIN_MEMORY) {
                cli_error("Invalid memory size '%s' (1M to 1T)", optarg);
                return 1;
            }
            break;
        }
        case OPT_OBJECT:
            if (cli_object_add(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS:
            image_opts = true;
            break;
        case 'h':
            help();
            return 0;
        default:
            return cli_bad_option(argv[0], argv, c);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(argv[0], optind >= argc
                                            ? "Expecting one image file name"
                                            : "Too many arguments");
    if (so.socket_path && (so.port || so.bind_addr))
        return cli_usage_error(argv[0], "-k cannot be used with -p or -b");
    if (strlen(name) > NBD_MAX_STRING)
        return cli_usage_error(argv[0], "export name too long");
    if (desc && strlen(desc) > NBD_MAX_STRING)
        return cli_usage_error(argv[0], "description too long");
    if (cli_parse_format(fmt_name, &format) < 0)
        return 1;

    flags = read_only ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR;
    if (force_share)
        flags |= QCOWKIT_OPEN_FORCE_SHARE;
    err = cli_open_image(argv[optind], image_opts, format, flags,
                         QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &img, NULL);
    if (err < 0)
        return 1;
    exp = malloc(sizeof *exp);
    if (!exp) {
        cli_error("nbd: out of memory");
        goto out;
    }
    err = nbd_export_init(exp, img, name, desc, read_only);
    if (err < 0) {
        cli_lib_error(err, argv[optind]);
        goto out;
    }
    /*
     * Several connections share the one handle (and its cache), so a
     * flush on one covers them all.  Advertised only without a client
     * limit: a multi-connection client (nbdcopy opens 4) would otherwise
     * wait forever for connections queued behind its own.
     */
    exp->multi_conn = so.shared == 0;
    /* Any one request must fit in the memory of all. */
    if (exp->max_request > so.max_memory)
        exp->max_request = (uint32_t)so.max_memory;
    if (nbd_serve(exp, &so) == 0)
        rc = 0;
out:
    free(exp);
    err = qcowkit_close(img);
    if (err < 0) {
        cli_lib_error(err, argv[optind]);
        rc = 1;
    }
    return rc;
}
