/* main.c - the qcowkit command: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command {
    const char *name;
    cli_handler handler;
    const char *usage;
};

static const struct command commands[] = {
    {"create", cmd_create,
     "create [-q] [-f FMT] [-b BACKING [-F BACKING_FMT]] [-u] [-o OPTIONS] "
     "FILE [SIZE]"},
    {"info", cmd_info,
     "info [-f FMT] [--output=human|json] [--backing-chain] [-U] FILE"},
    {"convert", cmd_convert,
     "convert [-c] [-p] [-q] [-n] [-f FMT] [-t CACHE] [-T SRC_CACHE] "
     "[-O OUTPUT_FMT] [-B BACKING [-F BACKING_FMT]] [-o OPTIONS] "
     "[-S SPARSE_SIZE] SRC DST"},
    {"compare", cmd_compare,
     "compare [-f FMT] [-F FMT] [-T SRC_CACHE] [-p] [-q] [-s] [-U] "
     "FILE1 FILE2"},
    {"map", cmd_map,
     "map [-f FMT] [--output=human|json] [--start-offset=OFFSET] "
     "[--max-length=LEN] [-U] FILE"},
    {"commit", cmd_commit,
     "commit [-q] [-f FMT] [-t CACHE] [-b BASE] [-d] [-p] [-r RATE_LIMIT] "
     "FILE"},
    {"rebase", cmd_rebase,
     "rebase [-q] [-f FMT] [-t CACHE] [-T SRC_CACHE] [-p] [-u] [-c] "
     "-b BACKING [-F BACKING_FMT] FILE"},
    {"resize", cmd_resize,
     "resize [-q] [-f FMT] [--shrink] [--object OBJ] [--image-opts] "
     "FILE [+|-]SIZE"},
    {"snapshot", cmd_snapshot,
     "snapshot [-q] [-U] [-l | -a SNAPSHOT | -c SNAPSHOT | -d SNAPSHOT] "
     "FILE"},
    {"measure", cmd_measure,
     "measure [--output=human|json] [-O OUTPUT_FMT] [-o OPTIONS] "
     "[--size N | [-f FMT] FILE]"},
    {"dd", cmd_dd,
     "dd [-f FMT] [-O OUTPUT_FMT] [bs=BLOCK_SIZE] [count=BLOCKS] "
     "[skip=BLOCKS] if=INPUT of=OUTPUT"},
    {"check", cmd_check,
     "check [-f FMT] [--output=human|json] [-r leaks|all] [-T SRC_CACHE] [-q] "
     "[-U] FILE"},
    {"io", cmd_io,
     "io [-f FMT] [-r] [-s] [-C] [-n] [-m] [-U] [-V] [-c CMD]... [FILE]   "
     "(commands: read, readv, write, writev, aio_read, aio_write, "
     "aio_flush, flush, map, alloc, length, info, truncate, sleep, open, "
     "close, help)"},
    {"bench", cmd_bench,
     "bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=N] [-i AIO] "
     "[-n] [--no-drain] [-o OFFSET] [--pattern=N] [-q] [-s BUFFER_SIZE] "
     "[-S STEP_SIZE] [-t CACHE] [-w] [-U] FILE"},
    {"nbd", cmd_nbd,
     "nbd [-f FMT] [-r] [-x EXPORT_NAME] [-k SOCKET | -p PORT [-b ADDR]] "
     "[-e SHARED] [-t] [--handshake-limit=N] [--max-memory=SIZE] "
     "[--pid-file=FILE] [-D DESCRIPTION] [-U] [-v] "
     "[--object OBJ] [--image-opts] FILE"},
    {"mount", cmd_mount,
     "mount [-f FMT] [-r] [-U] [--object OBJ] [--image-opts] "
     "[-o FUSE_OPTIONS] [--foreground|-F] [--pid-file=FILE] FILE MOUNTPOINT   "
     "(the disk as one file: over MOUNTPOINT if it is a regular file, else "
     "MOUNTPOINT/disk; unmount with fusermount3 -u)"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

const char *cli_usage(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].usage;
    return "";
}

static void print_version(void)
{
    printf("%s version %s (libqcowkit %s)\n", CLI_NAME, QCOWKIT_VERSION_STRING,
           qcowkit_version());
}

static void print_help(void)
{
    printf("usage: %s COMMAND [options]\n"
           "Read, write and create QEMU qcow (version 1) and raw disk "
           "images.\n\n"
           "Commands:\n",
           CLI_NAME);
    for (size_t i = 0; i < N_COMMANDS; i++)
        printf("  %s %s\n", CLI_NAME, commands[i].usage);
    printf("\n"
           "  %s help [COMMAND]   show this text or one command's usage\n"
           "  %s --version        show the version\n\n"
           "FMT is 'qcow' or 'raw'.  Sizes take the suffixes k, M, G, T, P "
           "and E\n"
           "(powers of 1024; lowercase works too).  Options and exit codes "
           "follow\n"
           "qemu-img (and qemu-io for 'io').\n",
           CLI_NAME, CLI_NAME);
}

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        cli_error("Not enough arguments");
        return 1;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        print_help();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        print_version();
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            print_help();
            return 0;
        }
        for (size_t i = 0; i < N_COMMANDS; i++) {
            if (strcmp(commands[i].name, argv[2]) == 0) {
                printf("usage: %s %s\n", CLI_NAME, commands[i].usage);
                return 0;
            }
        }
        cli_error("Command not found: %s", argv[2]);
        return 1;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, cmd) == 0)
            return commands[i].handler(argc - 1, argv + 1);
    cli_error("Command not found: %s", cmd);
    return 1;
}
