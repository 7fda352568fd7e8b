/* Per-thread error messages: usable even when no handle could be made. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char last_message[1024];

int qk_error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return err;
}

const char *qk_errmsg(void)
{
    return last_message;
}

const char *qcowkit_errmsg(void)
{
    return qk_errmsg();
}

const char *qcowkit_version(void)
{
    return QCOWKIT_VERSION_STRING;
}
