/*
 * What the test wrappers share: making a wrapper over an inner backend,
 * finding a wrapper's state again from its struct qcowkit_io (the public
 * interface hands a backend's opaque pointer only to its own functions),
 * and this library's per-thread message.
 */
#ifndef TEST_BACKENDS_WRAPPER_H
#define TEST_BACKENDS_WRAPPER_H

#include "test-backends.h"

/* Kept inside each wrapper's state; kind is its ops table. */
struct wrapper_link {
    struct qcowkit_io *io;
    const struct qcowkit_io_ops *kind;
    void *state;
    struct wrapper_link *next;
};

/*
 * A backend named as inner, with ops over state, remembered as a wrapper
 * of kind ops.  On failure nothing is remembered; state stays the
 * caller's to free.
 */
int wrapper_make(const struct qcowkit_io_ops *ops, void *state,
                 struct qcowkit_io *inner, struct wrapper_link *link,
                 struct qcowkit_io **io);

/* The state of io if it is a wrapper made with kind, else NULL. */
void *wrapper_find(const struct qcowkit_io *io,
                   const struct qcowkit_io_ops *kind);

/* Forget a wrapper (from its close function); unknown links are ignored. */
void wrapper_forget(struct wrapper_link *link);

/* Set this thread's message (printf-style) and return err. */
int wrapper_fail(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
