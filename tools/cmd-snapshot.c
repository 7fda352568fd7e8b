/* cmd-snapshot.c - qcowkit snapshot (qemu-img snapshot).  Neither qcow
 * version 1 nor raw has internal snapshots: the list is always empty, and
 * the other operations fail with QEMU 7.2's messages.  The image is still
 * opened first, so that a missing or bad image fails as it does in QEMU. */
#include <getopt.h>
#include <string.h>

#include "cli.h"

enum snapshot_op {
    SNAPSHOT_LIST,
    SNAPSHOT_APPLY,
    SNAPSHOT_CREATE,
    SNAPSHOT_DELETE
};

struct snapshot_args {
    struct cli_common co;
    enum snapshot_op op;
    bool op_given;
    const char *name; /* the snapshot of -a, -c or -d */
    const char *image;
};

/* One of -l, -a, -c, -d: 0, or -1 when a second one is given. */
static int set_op(struct snapshot_args *a, enum snapshot_op op,
                  const char *name)
{
    if (a->op_given)
        return -1;
    a->op_given = true;
    a->op = op;
    a->name = name;
    return 0;
}

static enum snapshot_op op_of(int c)
{
    return c == 'a'   ? SNAPSHOT_APPLY
           : c == 'c' ? SNAPSHOT_CREATE
           : c == 'd' ? SNAPSHOT_DELETE
                      : SNAPSHOT_LIST;
}

/* Returns CLI_NEXT_OPTION when the operation is to run, else the exit
 * code.  As in qemu-img 7.2, -f is not an option of snapshot. */
static int parse_snapshot_args(int argc, char **argv, struct snapshot_args *a)
{
    static const struct option longopts[] = {
        CLI_LONGOPT_HELP,        CLI_LONGOPT_OBJECT, CLI_LONGOPT_IMAGE_OPTS,
        CLI_LONGOPT_FORCE_SHARE, {NULL, 0, NULL, 0},
    };
    int c, ret;

    memset(a, 0, sizeof *a);
    cli_common_init(&a->co, "snapshot");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":la:c:d:hqU", longopts, NULL)) != -1) {
        if (c == 'l' || c == 'a' || c == 'c' || c == 'd') {
            if (set_op(a, op_of(c), optarg) < 0)
                return cli_usage_error("snapshot",
                                       "Cannot mix '-l', '-a', '-c', '-d'");
        } else if ((ret = cli_common_option(&a->co, argv, c)) !=
                   CLI_NEXT_OPTION)
            return ret;
    }
    if (optind != argc - 1)
        return cli_usage_error("snapshot", "Expecting one image file name");
    a->image = argv[optind];
    return CLI_NEXT_OPTION;
}

int cmd_snapshot(int argc, char **argv)
{
    struct snapshot_args a;
    struct qcowkit_image *img = NULL;
    unsigned flags;
    int ret = parse_snapshot_args(argc, argv, &a);

    if (ret != CLI_NEXT_OPTION)
        return ret;
    /* Only the list is read-only; QEMU opens the image for writing for
     * the others, so -U is refused there. */
    flags = a.op == SNAPSHOT_LIST ? QCOWKIT_OPEN_RDONLY : QCOWKIT_OPEN_RDWR;
    if (a.co.force_share)
        flags |= QCOWKIT_OPEN_FORCE_SHARE;
    if (cli_open_image(a.image, a.co.image_opts, QCOWKIT_FORMAT_AUTO, flags,
                       QCOWKIT_FORMAT_AUTO, CLI_OPEN_NEED_KEY, &img, NULL) < 0)
        return 1;
    qcowkit_close(img);
    switch (a.op) {
    case SNAPSHOT_LIST:
        return 0; /* no snapshots: QEMU prints nothing, not even a header */
    case SNAPSHOT_APPLY:
        cli_error("Could not apply snapshot '%s': Block driver does not "
                  "support snapshots",
                  a.name);
        return 1;
    case SNAPSHOT_CREATE:
        cli_error("Could not create snapshot '%s': -95 (Operation not "
                  "supported)",
                  a.name);
        return 1;
    case SNAPSHOT_DELETE:
        cli_error("Could not delete snapshot '%s': snapshot not found", a.name);
        return 1;
    }
    return 1;
}
