/*
 * test-backends.h - backends for tests, written on the public interface.
 *
 * Two wrappers around a backend: one fails chosen calls (error paths),
 * one simulates power loss (crash tests).  They are built only on
 * qcowkit.h: qcowkit_io_new() with a struct qcowkit_io_ops, and the
 * qcowkit_io_* calls to reach the backend they wrap (qcowkit_io_lock()
 * and qcowkit_io_extent() pass lock and extent on).  So they are not part
 * of libqcowkit, and they show that a program can write such backends.
 *
 * Each wrapper leaves the inner backend owned by the caller, who must
 * keep it open longer than the wrapper.  The calls that take a wrapper
 * fail with -EINVAL for any other backend.  Failing calls return a
 * negative errno and set a message for the calling thread, read with
 * test_backends_errmsg() (qcowkit_errmsg() belongs to the library).
 */
#ifndef TEST_BACKENDS_H
#define TEST_BACKENDS_H

#include <stdint.h>

#include "qcowkit.h"

/* The message of this thread's last failed call here ("" if none). */
const char *test_backends_errmsg(void);

/* --------------------------------------------------------------- faults */

/* A wrapper that passes every call on until a call armed to fail. */
int fault_backend_new(struct qcowkit_io *inner, struct qcowkit_io **io);

/* The calls that can be made to fail; discard counts as a write. */
enum fault_op {
    FAULT_OP_READ,
    FAULT_OP_WRITE,
    FAULT_OP_FLUSH,
    FAULT_OP_TRUNCATE,
};

/*
 * Make the nth call (1 = the next one) of op fail with error (a negative
 * errno).  persistent: every later call of op fails too.  nth 0 disarms.
 */
int fault_backend_arm(struct qcowkit_io *io, enum fault_op op, uint64_t nth,
                      int persistent, int error);

/* How many calls of op the wrapper has seen so far (0 for another io). */
uint64_t fault_backend_count(struct qcowkit_io *io, enum fault_op op);

/* ----------------------------------------------------------- power loss */

/*
 * A wrapper that simulates power loss.  Writes and truncates reach the
 * inner backend at once, and are also remembered until the next flush;
 * the state as of that flush is kept aside.  Once armed, the nth write
 * or truncate from then on "loses power": it and every later call fail
 * with -EIO.  A discard counts as a write of zeros.  crash_backend_image() then
 * builds what a disk could hold after the loss: the flushed state plus each
 * unflushed write kept, dropped, or torn (kept for some of its 512-byte sectors
 * only).
 */
int crash_backend_new(struct qcowkit_io *inner, struct qcowkit_io **io);
int crash_backend_arm(struct qcowkit_io *io, uint64_t nth);
/* Writes and truncates seen so far (0 for another io). */
uint64_t crash_backend_writes(struct qcowkit_io *io);

enum crash_mode {
    CRASH_DROP_ALL, /* no unflushed write survives */
    CRASH_KEEP_ALL, /* every unflushed write survives */
    CRASH_RANDOM,   /* each kept, dropped or torn, from seed */
};

/* The disk after power loss, as a new in-memory backend. */
int crash_backend_image(struct qcowkit_io *io, enum crash_mode mode,
                        uint64_t seed, struct qcowkit_io **after);

#endif
