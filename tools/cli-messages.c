/* cli-messages.c - one-line errors and usage messages of the command. */
#include <stdarg.h>
#include <string.h>

#include "cli.h"

static void verror(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs(CLI_NAME ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
}

void cli_lib_error(int err, const char *prefix)
{
    const char *msg = qcowkit_errmsg();

    if (!msg || !*msg)
        msg = strerror(err < 0 ? -err : err);
    if (prefix)
        cli_error("%s: %s", prefix, msg);
    else
        cli_error("%s", msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    (void)cmd;
    va_start(ap, fmt);
    verror(fmt, ap);
    va_end(ap);
    return 1;
}

int cli_bad_option(const char *cmd, char **argv, int c)
{
    /* getopt_long with a leading ':' in optstring: ':' = missing value. */
    extern int optind, optopt;
    const char *arg = argv[optind - 1];

    if (c == ':') {
        if (optopt)
            return cli_usage_error(cmd, "missing argument for option '-%c'",
                                   optopt);
        return cli_usage_error(cmd, "missing argument for option '%s'", arg);
    }
    if (optopt)
        return cli_usage_error(cmd, "unrecognized option '-%c'", optopt);
    return cli_usage_error(cmd, "unrecognized option '%s'", arg);
}
