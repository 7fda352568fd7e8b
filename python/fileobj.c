/*
 * fileobj.c - a libqcowkit backend whose storage is a Python file object.
 *
 * The library calls these functions with the GIL released (the image
 * object drops it around every library call), possibly from several
 * threads.  A seek followed by a read is not atomic on a file object, so
 * each callback takes the backend's mutex first and only then the GIL:
 * nobody waits for the mutex while holding the GIL, hence no deadlock.
 * A Python exception becomes -EIO; the exception is kept for the image
 * object to chain to the qcowkit.Error it raises.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit-py.h"

struct pyqk_fileobj {
    PyObject *obj;
    pthread_mutex_t lock;
    PyObject *error; /* the last callback's exception; GIL-protected */
};

/* Keep the pending exception for the image; returns -EIO. */
static int keep_error(struct pyqk_fileobj *f)
{
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    Py_XSETREF(f->error, value);
    return -EIO;
}

/* Say why a callback failed without a Python exception of its own. */
static int fail(struct pyqk_fileobj *f, const char *why)
{
    PyErr_SetString(PyExc_OSError, why);
    return keep_error(f);
}

/*
 * seek(offset, whence); *pos (if wanted) is where it went.  A seek that
 * returns None (dfvfs's file objects do) is asked with tell().
 */
static int call_seek(struct pyqk_fileobj *f, uint64_t offset, int whence,
                     uint64_t *pos)
{
    PyObject *r = PyObject_CallMethod(f->obj, "seek", "Ki",
                                      (unsigned long long)offset, whence);
    unsigned long long v;

    if (!r)
        return keep_error(f);
    if (!pos) {
        Py_DECREF(r);
        return 0;
    }
    if (r == Py_None) {
        Py_DECREF(r);
        r = PyObject_CallMethod(f->obj, "tell", NULL);
        if (!r)
            return keep_error(f);
    }
    v = PyLong_AsUnsignedLongLong(r);
    Py_DECREF(r);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return keep_error(f);
    *pos = v;
    return 0;
}

/*
 * A file object sees copies, never the library's memory: it may keep a
 * slice of a memoryview past the call (release() then fails), and such
 * a slice would read or write memory the library has since reused.  The
 * copies go in pieces of at most this size.
 */
#define MAX_CALLBACK_BYTES ((size_t)1 << 20)

static void release_view(PyObject *view)
{
    PyObject *type, *value, *tb, *r;

    PyErr_Fetch(&type, &value, &tb);
    r = PyObject_CallMethod(view, "release", NULL);
    if (r)
        Py_DECREF(r);
    else
        PyErr_Clear();
    Py_DECREF(view);
    PyErr_Restore(type, value, tb);
}

/* readinto(view) over a scratch bytearray; the count, copied to buf. */
static Py_ssize_t readinto_copy(struct pyqk_fileobj *f, char *buf, size_t count)
{
    PyObject *scratch = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)count);
    PyObject *view = scratch ? PyMemoryView_FromObject(scratch) : NULL;
    PyObject *r =
        view ? PyObject_CallMethod(f->obj, "readinto", "O", view) : NULL;
    Py_ssize_t n = -1;

    if (r) {
        n = r == Py_None ? -2 : PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (n == -2 || n > (Py_ssize_t)count || (n < 0 && !PyErr_Occurred()))
            PyErr_SetString(PyExc_OSError, "readinto returned no valid count");
        if (n >= 0 && n <= (Py_ssize_t)count)
            memcpy(buf, PyByteArray_AS_STRING(scratch), (size_t)n);
        else
            n = -1;
    }
    if (view)
        release_view(view); /* the bytearray cannot resize before this */
    Py_XDECREF(scratch);
    return n;
}

/* One readinto (or read) of at most count bytes; the bytes it gave. */
static Py_ssize_t read_some(struct pyqk_fileobj *f, char *buf, size_t count)
{
    PyObject *r;
    Py_ssize_t n;

    if (count > MAX_CALLBACK_BYTES)
        count = MAX_CALLBACK_BYTES;
    if (PyObject_HasAttrString(f->obj, "readinto"))
        return readinto_copy(f, buf, count);
    r = PyObject_CallMethod(f->obj, "read", "n", (Py_ssize_t)count);
    if (!r)
        return -1;
    if (!PyBytes_Check(r) || PyBytes_GET_SIZE(r) > (Py_ssize_t)count) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_OSError, "read did not return bytes");
        return -1;
    }
    n = PyBytes_GET_SIZE(r);
    memcpy(buf, PyBytes_AS_STRING(r), (size_t)n);
    Py_DECREF(r);
    return n;
}

/* Short reads are retried; the end of the file reads as zeros. */
static int fileobj_read_locked(struct pyqk_fileobj *f, char *buf, size_t count,
                               uint64_t offset)
{
    size_t done = 0;
    int err = call_seek(f, offset, 0, NULL);

    while (err == 0 && done < count) {
        Py_ssize_t n = read_some(f, buf + done, count - done);
        if (n < 0)
            return keep_error(f);
        if (n == 0)
            break;
        done += (size_t)n;
    }
    if (err == 0)
        memset(buf + done, 0, count - done);
    return err;
}

static int fileobj_pread(void *opaque, void *buf, size_t count, uint64_t offset)
{
    struct pyqk_fileobj *f = opaque;
    PyGILState_STATE gil;
    int err;

    pthread_mutex_lock(&f->lock);
    gil = PyGILState_Ensure();
    err = fileobj_read_locked(f, buf, count, offset);
    PyGILState_Release(gil);
    pthread_mutex_unlock(&f->lock);
    return err;
}

static int fileobj_write_locked(struct pyqk_fileobj *f, const char *buf,
                                size_t count, uint64_t offset)
{
    size_t done = 0;
    int err = call_seek(f, offset, 0, NULL);

    while (err == 0 && done < count) {
        size_t piece = count - done < MAX_CALLBACK_BYTES ? count - done
                                                         : MAX_CALLBACK_BYTES;
        PyObject *copy =
            PyBytes_FromStringAndSize(buf + done, (Py_ssize_t)piece);
        PyObject *r;
        Py_ssize_t n;

        if (!copy)
            return keep_error(f);
        r = PyObject_CallMethod(f->obj, "write", "O", copy);
        Py_DECREF(copy);
        if (!r)
            return keep_error(f);
        n = r == Py_None ? 0 : PyLong_AsSsize_t(r);
        Py_DECREF(r);
        if (n < 0 && PyErr_Occurred())
            return keep_error(f);
        if (n <= 0 || (size_t)n > piece)
            return fail(f, "write returned no valid count");
        done += (size_t)n;
    }
    return err;
}

static int fileobj_pwrite(void *opaque, const void *buf, size_t count,
                          uint64_t offset)
{
    struct pyqk_fileobj *f = opaque;
    PyGILState_STATE gil;
    int err;

    pthread_mutex_lock(&f->lock);
    gil = PyGILState_Ensure();
    err = fileobj_write_locked(f, buf, count, offset);
    PyGILState_Release(gil);
    pthread_mutex_unlock(&f->lock);
    return err;
}

/* Call method (no arguments) if the object has it. */
static int call_optional(struct pyqk_fileobj *f, const char *method)
{
    PyGILState_STATE gil;
    PyObject *r;
    int err = 0;

    pthread_mutex_lock(&f->lock);
    gil = PyGILState_Ensure();
    if (PyObject_HasAttrString(f->obj, method)) {
        r = PyObject_CallMethod(f->obj, method, NULL);
        if (r)
            Py_DECREF(r);
        else
            err = keep_error(f);
    }
    PyGILState_Release(gil);
    pthread_mutex_unlock(&f->lock);
    return err;
}

static int fileobj_flush(void *opaque)
{
    return call_optional(opaque, "flush");
}

static int fileobj_get_size(void *opaque, uint64_t *size)
{
    struct pyqk_fileobj *f = opaque;
    PyGILState_STATE gil;
    int err;

    pthread_mutex_lock(&f->lock);
    gil = PyGILState_Ensure();
    err = call_seek(f, 0, 2, size);
    PyGILState_Release(gil);
    pthread_mutex_unlock(&f->lock);
    return err;
}

/* truncate(size); io.BytesIO does not grow that way: write the last byte. */
static int fileobj_truncate_locked(struct pyqk_fileobj *f, uint64_t size)
{
    PyObject *r =
        PyObject_CallMethod(f->obj, "truncate", "K", (unsigned long long)size);
    uint64_t now;
    int err;

    if (!r)
        return keep_error(f);
    Py_DECREF(r);
    err = call_seek(f, 0, 2, &now);
    if (err == 0 && now < size)
        err = fileobj_write_locked(f, "", 1, size - 1);
    return err;
}

static int fileobj_truncate(void *opaque, uint64_t size)
{
    struct pyqk_fileobj *f = opaque;
    PyGILState_STATE gil;
    int err;

    pthread_mutex_lock(&f->lock);
    gil = PyGILState_Ensure();
    err = fileobj_truncate_locked(f, size);
    PyGILState_Release(gil);
    pthread_mutex_unlock(&f->lock);
    return err;
}

static void fileobj_close(void *opaque)
{
    struct pyqk_fileobj *f = opaque;
    PyGILState_STATE gil = PyGILState_Ensure();

    Py_CLEAR(f->obj);
    Py_CLEAR(f->error);
    PyGILState_Release(gil);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int pyqk_fileobj_new(PyObject *obj, const char *name, struct qcowkit_io **io,
                     struct pyqk_fileobj **state)
{
    struct qcowkit_io_ops ops;
    struct pyqk_fileobj *f = calloc(1, sizeof *f);
    int err;

    if (!f)
        return -ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    Py_INCREF(obj);
    f->obj = obj;
    qcowkit_io_ops_init(&ops);
    ops.pread = fileobj_pread;
    ops.pwrite = fileobj_pwrite;
    ops.flush = fileobj_flush;
    ops.get_size = fileobj_get_size;
    ops.truncate = fileobj_truncate;
    ops.close = fileobj_close;
    err = qcowkit_io_new(&ops, f, name, io);
    if (err < 0) {
        Py_DECREF(obj);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return err;
    }
    *state = f;
    return 0;
}

PyObject *pyqk_fileobj_take_error(struct pyqk_fileobj *state)
{
    PyObject *e;

    if (!state)
        return NULL;
    e = state->error;
    state->error = NULL;
    return e;
}

int pyqk_fileobj_traverse(struct pyqk_fileobj *state, visitproc visit,
                          void *arg)
{
    if (state) {
        Py_VISIT(state->obj);
        Py_VISIT(state->error);
    }
    return 0;
}
