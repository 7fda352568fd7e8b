/* The registry of live wrappers, and the per-thread message. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "wrapper.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wrapper_link *registry;
static _Thread_local char message[512];

int wrapper_make(const struct qcowkit_io_ops *ops, void *state,
                 struct qcowkit_io *inner, struct wrapper_link *link,
                 struct qcowkit_io **io)
{
    const char *name = qcowkit_io_name(inner);
    int err = qcowkit_io_new(ops, state, name, io);

    if (err < 0)
        return wrapper_fail(err, "%s: cannot wrap: %s", name, qcowkit_errmsg());
    link->io = *io;
    link->kind = ops;
    link->state = state;
    pthread_mutex_lock(&registry_lock);
    link->next = registry;
    registry = link;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

void *wrapper_find(const struct qcowkit_io *io,
                   const struct qcowkit_io_ops *kind)
{
    void *state = NULL;

    pthread_mutex_lock(&registry_lock);
    for (struct wrapper_link *l = registry; l && !state; l = l->next)
        if (io && l->io == io && l->kind == kind)
            state = l->state;
    pthread_mutex_unlock(&registry_lock);
    return state;
}

void wrapper_forget(struct wrapper_link *link)
{
    pthread_mutex_lock(&registry_lock);
    for (struct wrapper_link **p = &registry; *p; p = &(*p)->next)
        if (*p == link) {
            *p = link->next;
            break;
        }
    pthread_mutex_unlock(&registry_lock);
}

int wrapper_fail(int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return err;
}

const char *test_backends_errmsg(void)
{
    return message;
}
