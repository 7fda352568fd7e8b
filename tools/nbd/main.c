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

/* What the command line asks for. */
struct nbd_cli {
    struct nbd_server_opts so;
    const char *fmt_name, *name, *desc;
    bool read_only, force_share, image_opts;
};

static int parse_shared(const char *arg, unsigned *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 0 || v > 65536) {
        cli_error("Invalid shared device number '%s'", arg);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_memory(const char *arg, uint64_t *out)
{
    const char *why;

    if (cli_parse_size(arg, UINT64_C(1) << 40, out, &why) < 0 ||
        *out < NBD_MIN_MEMORY) {
        cli_error("Invalid memory size '%s' (1M to 1T)", arg);
        return -1;
    }
    return 0;
}

/* Options that take a value; CLI_NEXT_OPTION, or the exit code. */
static int value_option(struct nbd_cli *o, int c, const char *arg)
{
    switch (c) {
    case 'f':
        o->fmt_name = arg;
        break;
    case 'x':
        o->name = arg;
        break;
    case 'k':
        o->so.socket_path = arg;
        break;
    case 'p':
        o->so.port = arg;
        break;
    case 'b':
        o->so.bind_addr = arg;
        break;
    case 'e':
        return parse_shared(arg, &o->so.shared) < 0 ? 1 : CLI_NEXT_OPTION;
    case OPT_PID_FILE:
        o->so.pid_file = arg;
        break;
    case 'D':
        o->desc = arg;
        break;
    case OPT_HANDSHAKE_LIMIT:
        return parse_seconds(arg, &o->so.handshake_limit) < 0 ? 1
                                                              : CLI_NEXT_OPTION;
    case OPT_MAX_MEMORY:
        return parse_memory(arg, &o->so.max_memory) < 0 ? 1 : CLI_NEXT_OPTION;
    case OPT_OBJECT:
        return cli_object_add(arg) < 0 ? 1 : CLI_NEXT_OPTION;
    default:
        return -2; /* not an option with a value */
    }
    return CLI_NEXT_OPTION;
}

/* One option from getopt_long: CLI_NEXT_OPTION, or the exit code. */
static int nbd_option(struct nbd_cli *o, char **argv, int c)
{
    int ret = value_option(o, c, optarg);

    if (ret != -2)
        return ret;
    switch (c) {
    case 'r':
        o->read_only = true;
        break;
    case 't':
        o->so.persistent = true;
        break;
    case 'U':
        o->force_share = true;
        break;
    case 'v':
        o->so.verbose = true;
        break;
    case OPT_IMAGE_OPTS:
        o->image_opts = true;
        break;
    case 'h':
        help();
        return 0;
    default:
        return cli_bad_option(argv[0], argv, c);
    }
    return CLI_NEXT_OPTION;
}

/* Parse and check the command line; CLI_NEXT_OPTION, or the exit code. */
static int parse_nbd_args(int argc, char **argv, struct nbd_cli *o)
{
    int c, ret;

    memset(o, 0, sizeof *o);
    o->name = "";
    o->so.shared = 1;
    o->so.handshake_limit = NBD_HANDSHAKE_SECS;
    o->so.max_memory = NBD_MAX_MEMORY;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":f:rx:k:p:b:e:tD:Uvh", long_options,
                            NULL)) != -1)
        if ((ret = nbd_option(o, argv, c)) != CLI_NEXT_OPTION)
            return ret;
    if (optind != argc - 1)
        return cli_usage_error(argv[0], optind >= argc
                                            ? "Expecting one image file name"
                                            : "Too many arguments");
    if (o->so.socket_path && (o->so.port || o->so.bind_addr))
        return cli_usage_error(argv[0], "-k cannot be used with -p or -b");
    if (strlen(o->name) > NBD_MAX_STRING)
        return cli_usage_error(argv[0], "export name too long");
    if (o->desc && strlen(o->desc) > NBD_MAX_STRING)
        return cli_usage_error(argv[0], "description too long");
    return CLI_NEXT_OPTION;
}

/* Export the open image img (named file) as o asks; the exit code. */
static int export_image(struct nbd_cli *o, struct qcowkit_image *img,
                        const char *file)
{
    struct nbd_export *exp = malloc(sizeof *exp);
    int err, rc = 1;

    if (!exp) {
        cli_error("nbd: out of memory");
        return 1;
    }
    err = nbd_export_init(exp, img, o->name, o->desc, o->read_only);
    if (err < 0) {
        cli_lib_error(err, file);
        free(exp);
        return 1;
    }
    /*
     * Several connections share the one handle (and its cache), so a
     * flush on one covers them all.  Advertised only without a client
     * limit: a multi-connection client (nbdcopy opens 4) would otherwise
     * wait forever for connections queued behind its own.
     */
    exp->multi_conn = o->so.shared == 0;
    /* Any one request must fit in the memory of all. */
    if (exp->max_request > o->so.max_memory)
        exp->max_request = (uint32_t)o->so.max_memory;
    if (nbd_serve(exp, &o->so) == 0)
        rc = 0;
    free(exp);
    return rc;
}

int cmd_nbd(int argc, char **argv)
{
    struct nbd_cli o;
    enum qcowkit_format format = QCOWKIT_FORMAT_AUTO;
    struct qcowkit_image *img = NULL;
    const char *file;
    unsigned flags;
    int rc, err;

    rc = parse_nbd_args(argc, argv, &o);
    if (rc != CLI_NEXT_OPTION)
        return rc;
    if (cli_parse_format(o.fmt_name, &format) < 0)
        return 1;
    file = argv[optind];
    flags = o.read_only ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR;
    if (o.force_share)
        flags |= QCOWKIT_OPEN_FORCE_SHARE;
    err = cli_open_image(file, o.image_opts, format, flags, QCOWKIT_FORMAT_AUTO,
                         CLI_OPEN_NEED_KEY, &img, NULL);
    if (err < 0)
        return 1;
    rc = export_image(&o, img, file);
    err = qcowkit_close(img);
    if (err < 0) {
        cli_lib_error(err, file);
        rc = 1;
    }
    return rc;
}
