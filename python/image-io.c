/*
 * image-io.c - reading, writing and seeking an image object.
 *
 * Every library call runs with the GIL released, between
 * pyqk_image_enter() and pyqk_image_leave(), so other threads run
 * meanwhile and close() waits for it.  The position is read before and
 * updated after, both with the GIL held.
 */
#include <errno.h>
#include <string.h>

#include "qcowkit-py.h"

/* Bytes readable at pos: count clamped to the end of the image. */
static size_t clamp(const struct pyqk_image *st, uint64_t pos, size_t count)
{
    if (pos >= st->size)
        return 0;
    return st->size - pos < count ? (size_t)(st->size - pos) : count;
}

/* Read count bytes at pos into buf; -1 with an exception set. */
static int read_at(PyObject *self, void *buf, size_t count, uint64_t pos)
{
    struct qcowkit_image *img;
    char msg[1024];
    int err;

    if (count == 0)
        return pyqk_image_enter(self) ? (pyqk_image_leave(self), 0) : -1;
    img = pyqk_image_enter(self);
    if (!img)
        return -1;
    Py_BEGIN_ALLOW_THREADS err = qcowkit_pread(img, buf, count, pos);
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    Py_END_ALLOW_THREADS pyqk_image_leave(self);
    if (err < 0) {
        pyqk_image_error(self, err, msg);
        return -1;
    }
    return 0;
}

static int write_at(PyObject *self, const void *buf, size_t count, uint64_t pos)
{
    struct pyqk_image *st = pyqk_image_state(self);
    struct qcowkit_image *img = pyqk_image_enter(self);
    char msg[1024];
    int err;

    if (!img)
        return -1;
    if (!st->writable) {
        pyqk_image_leave(self);
        pyqk_raise_unsupported("image opened read-only");
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS err =
        count ? qcowkit_pwrite(img, buf, count, pos) : 0;
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    Py_END_ALLOW_THREADS pyqk_image_leave(self);
    if (err < 0) {
        pyqk_image_error(self, err, msg);
        return -1;
    }
    return 0;
}

static PyObject *image_readinto(PyObject *self, PyObject *arg)
{
    struct pyqk_image *st = pyqk_image_state(self);
    uint64_t pos = st->pos;
    Py_buffer view;
    size_t n;

    if (PyObject_GetBuffer(arg, &view, PyBUF_WRITABLE) < 0)
        return NULL;
    n = clamp(st, pos, (size_t)view.len);
    if (read_at(self, view.buf, n, pos) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    PyBuffer_Release(&view);
    st->pos = pos + n;
    return PyLong_FromSize_t(n);
}

/* read(size=-1): bytes, straight from the library into the result. */
static PyObject *image_read(PyObject *self, PyObject *args)
{
    struct pyqk_image *st = pyqk_image_state(self);
    Py_ssize_t size = -1;
    uint64_t pos = st->pos;
    PyObject *out;
    size_t n;

    if (!PyArg_ParseTuple(args, "|n:read", &size))
        return NULL;
    n = clamp(st, pos, size < 0 ? SIZE_MAX : (size_t)size);
    if (n > PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!out)
        return NULL;
    if (read_at(self, PyBytes_AS_STRING(out), n, pos) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    st->pos = pos + n;
    return out;
}

static PyObject *image_readall(PyObject *self, PyObject *unused)
{
    PyObject *args = PyTuple_New(0), *r;

    (void)unused;
    if (!args)
        return NULL;
    r = image_read(self, args);
    Py_DECREF(args);
    return r;
}

static PyObject *image_write(PyObject *self, PyObject *arg)
{
    struct pyqk_image *st = pyqk_image_state(self);
    uint64_t pos = st->pos;
    Py_buffer view;
    int err;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    err = write_at(self, view.buf, (size_t)view.len, pos);
    PyBuffer_Release(&view);
    if (err < 0)
        return NULL;
    st->pos = pos + (uint64_t)view.len;
    return PyLong_FromSsize_t(view.len);
}

/* pread(size, offset): bytes, without moving the position. */
static PyObject *image_pread(PyObject *self, PyObject *args)
{
    struct pyqk_image *st = pyqk_image_state(self);
    unsigned long long offset;
    Py_ssize_t size;
    PyObject *out;
    size_t n;

    if (!PyArg_ParseTuple(args, "nK:pread", &size, &offset))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    n = clamp(st, offset, (size_t)size);
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!out)
        return NULL;
    if (read_at(self, PyBytes_AS_STRING(out), n, offset) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *image_pwrite(PyObject *self, PyObject *args)
{
    unsigned long long offset;
    Py_buffer view;
    int err;

    if (!PyArg_ParseTuple(args, "y*K:pwrite", &view, &offset))
        return NULL;
    err = write_at(self, view.buf, (size_t)view.len, offset);
    PyBuffer_Release(&view);
    if (err < 0)
        return NULL;
    return PyLong_FromSsize_t(view.len);
}

static PyObject *image_seek(PyObject *self, PyObject *args)
{
    struct pyqk_image *st = pyqk_image_state(self);
    long long offset, base;
    int whence = 0;

    if (!PyArg_ParseTuple(args, "L|i:seek", &offset, &whence))
        return NULL;
    if (!pyqk_image_enter(self))
        return NULL;
    pyqk_image_leave(self);
    if (whence == 0)
        base = 0;
    else if (whence == 1)
        base = (long long)st->pos;
    else if (whence == 2)
        base = (long long)st->size;
    else
        return PyErr_Format(PyExc_ValueError, "invalid whence (%d)", whence);
    if ((offset < 0 && base + offset < 0) ||
        (offset > 0 && base > INT64_MAX - offset)) {
        errno = EINVAL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    st->pos = (uint64_t)(base + offset);
    return PyLong_FromUnsignedLongLong(st->pos);
}

static PyObject *image_tell(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (!pyqk_image_enter(self))
        return NULL;
    pyqk_image_leave(self);
    return PyLong_FromUnsignedLongLong(pyqk_image_state(self)->pos);
}

static PyObject *image_flush(PyObject *self, PyObject *unused)
{
    struct qcowkit_image *img = pyqk_image_enter(self);
    char msg[1024];
    int err;

    (void)unused;
    if (!img)
        return NULL;
    Py_BEGIN_ALLOW_THREADS err = qcowkit_flush(img);
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    Py_END_ALLOW_THREADS pyqk_image_leave(self);
    if (err < 0)
        return pyqk_image_error(self, err, msg);
    Py_RETURN_NONE;
}

PyMethodDef pyqk_image_io_methods[] = {
    {"readinto", image_readinto, METH_O,
     "Read into a writable buffer; returns the bytes read (0 at the end)."},
    {"read", image_read, METH_VARARGS,
     "read(size=-1): up to size bytes from the position."},
    {"readall", image_readall, METH_NOARGS, "Everything up to the end."},
    {"write", image_write, METH_O,
     "Write a bytes-like object at the position ('r+b' only)."},
    {"pread", image_pread, METH_VARARGS,
     "pread(size, offset): bytes at offset; the position does not move."},
    {"pwrite", image_pwrite, METH_VARARGS,
     "pwrite(data, offset): write at offset; the position does not move."},
    {"seek", image_seek, METH_VARARGS, "seek(offset, whence=0)"},
    {"tell", image_tell, METH_NOARGS, "The position."},
    {"flush", image_flush, METH_NOARGS, "Make the writes so far durable."},
    {NULL, NULL, 0, NULL},
};
