/*
 * image.c - the image object: its type, its lifetime and close().
 *
 * The type derives from _io._RawIOBase and is registered as an
 * io.RawIOBase, as io.FileIO is.  Its fields (struct pyqk_image) lie
 * after the base class's, whose size is known only at run time.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit-py.h"

PyTypeObject *pyqk_image_type;
static PyTypeObject *image_base;
static Py_ssize_t state_offset;

struct pyqk_image *pyqk_image_state(PyObject *self)
{
    return (struct pyqk_image *)((char *)self + state_offset);
}

/*
 * The images this thread is inside a call of, innermost last.  A file
 * object's callback runs inside such a call: using that image again from
 * it (a read, a close) would wait for the call it is part of, forever.
 */
#define MAX_NESTED_CALLS 16
static _Thread_local struct pyqk_image *calls_here[MAX_NESTED_CALLS];
static _Thread_local int ncalls_here;

static int in_call_here(const struct pyqk_image *st)
{
    for (int i = 0; i < ncalls_here; i++)
        if (calls_here[i] == st)
            return 1;
    return 0;
}

/* qcowkit.Error (EDEADLK) when this thread is inside a call of st. */
static int refuse_reentry(const struct pyqk_image *st)
{
    if (!in_call_here(st) && ncalls_here < MAX_NESTED_CALLS)
        return 0;
    pyqk_raise(-EDEADLK,
               in_call_here(st)
                   ? "image used from inside one of its own calls (a file "
                     "object's callback)"
                   : "image calls nested too deeply through file objects",
               NULL);
    return -1;
}

struct qcowkit_image *pyqk_image_enter(PyObject *self)
{
    struct pyqk_image *st = pyqk_image_state(self);
    struct qcowkit_image *img;

    if (refuse_reentry(st) < 0)
        return NULL;
    pthread_mutex_lock(&st->lock);
    img = st->closing ? NULL : st->img;
    if (img)
        st->users++;
    pthread_mutex_unlock(&st->lock);
    if (!img)
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed image");
    else
        calls_here[ncalls_here++] = st;
    return img;
}

void pyqk_image_leave(PyObject *self)
{
    struct pyqk_image *st = pyqk_image_state(self);

    if (ncalls_here > 0 && calls_here[ncalls_here - 1] == st)
        ncalls_here--;
    pthread_mutex_lock(&st->lock);
    if (--st->users == 0 && st->closing)
        pthread_cond_broadcast(&st->idle);
    pthread_mutex_unlock(&st->lock);
}

PyObject *pyqk_image_error(PyObject *self, int err, const char *message)
{
    return pyqk_raise(err, message,
                      pyqk_fileobj_take_error(pyqk_image_state(self)->fileobj));
}

/*
 * Wait for the calls in flight, then close the handle.  Returns the
 * first error, 0, or 1 if another thread closed it first.  Called with
 * the GIL released.
 */
static int close_image(struct pyqk_image *st, char *msg, size_t msg_len)
{
    struct qcowkit_image *img;
    int err;

    pthread_mutex_lock(&st->lock);
    if (st->closing || !st->img) {
        pthread_mutex_unlock(&st->lock);
        return 1;
    }
    st->closing = 1;
    while (st->users)
        pthread_cond_wait(&st->idle, &st->lock);
    img = st->img;
    st->img = NULL;
    pthread_mutex_unlock(&st->lock);
    err = qcowkit_close(img);
    if (err < 0)
        pyqk_errmsg_copy(msg, msg_len);
    return err;
}

/* Close the handle, then the file object's backend (with the GIL). */
static int close_all(struct pyqk_image *st, char *msg, size_t msg_len,
                     PyObject **cause)
{
    struct qcowkit_io *io;
    int err;

    PyThreadState *ts = PyEval_SaveThread();
    err = close_image(st, msg, msg_len);
    PyEval_RestoreThread(ts);
    if (err == 1)
        return 1;
    *cause = err < 0 ? pyqk_fileobj_take_error(st->fileobj) : NULL;
    io = st->io;
    st->io = NULL;
    st->fileobj = NULL; /* before the file object goes: no traverse of it */
    qcowkit_io_close(io);
    return err;
}

static PyObject *image_close(PyObject *self, PyObject *unused)
{
    char msg[1024] = "";
    PyObject *cause = NULL;
    int err;

    (void)unused;
    if (refuse_reentry(pyqk_image_state(self)) < 0)
        return NULL;
    err = close_all(pyqk_image_state(self), msg, sizeof msg, &cause);
    if (err < 0)
        return pyqk_raise(err, msg, cause);
    Py_RETURN_NONE;
}

static PyObject *get_closed(PyObject *self, void *unused)
{
    struct pyqk_image *st = pyqk_image_state(self);
    int closed;

    (void)unused;
    pthread_mutex_lock(&st->lock);
    closed = st->img == NULL || st->closing;
    pthread_mutex_unlock(&st->lock);
    return PyBool_FromLong(closed);
}

static PyObject *get_size(PyObject *self, void *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLongLong(pyqk_image_state(self)->size);
}

static PyObject *get_name(PyObject *self, void *unused)
{
    PyObject *name = pyqk_image_state(self)->name_obj;

    (void)unused;
    Py_INCREF(name);
    return name;
}

static PyObject *get_mode(PyObject *self, void *unused)
{
    (void)unused;
    return PyUnicode_FromString(pyqk_image_state(self)->writable ? "r+b"
                                                                 : "rb");
}

static PyGetSetDef image_getset[] = {
    {"closed", get_closed, NULL, "True once closed.", NULL},
    {"size", get_size, NULL, "The virtual size in bytes.", NULL},
    {"name", get_name, NULL, "The path, or the file object's name.", NULL},
    {"mode", get_mode, NULL, "'rb' or 'r+b'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *image_repr(PyObject *self)
{
    struct pyqk_image *st = pyqk_image_state(self);

    return PyUnicode_FromFormat("<qcowkit.Image name=%R mode='%s'%s>",
                                st->name_obj, st->writable ? "r+b" : "rb",
                                st->img ? "" : " closed");
}

static int image_traverse(PyObject *self, visitproc visit, void *arg)
{
    int err =
        pyqk_fileobj_traverse(pyqk_image_state(self)->fileobj, visit, arg);

    if (err)
        return err;
    Py_VISIT(Py_TYPE(self));
    return image_base->tp_traverse(self, visit, arg);
}

static void image_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    struct pyqk_image *st = pyqk_image_state(self);
    PyObject *cause = NULL;
    char msg[1024];

    /* The base's finalizer calls close(); it may resurrect the object. */
    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return;
    if (st->img && close_all(st, msg, sizeof msg, &cause) < 0)
        Py_XDECREF(cause);
    Py_CLEAR(st->name_obj);
    free(st->path);
    free(st->name);
    pthread_cond_destroy(&st->idle);
    pthread_mutex_destroy(&st->lock);
    image_base->tp_dealloc(self);
    Py_DECREF(tp);
}

static PyObject *image_true(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (!pyqk_image_enter(self))
        return NULL;
    pyqk_image_leave(self);
    Py_RETURN_TRUE;
}

static PyObject *image_writable(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (!pyqk_image_enter(self))
        return NULL;
    pyqk_image_leave(self);
    return PyBool_FromLong(pyqk_image_state(self)->writable);
}

static PyMethodDef image_methods[] = {
    {"close", image_close, METH_NOARGS,
     "Flush and close; waits for calls in flight in other threads."},
    {"readable", image_true, METH_NOARGS, "True."},
    {"seekable", image_true, METH_NOARGS, "True."},
    {"writable", image_writable, METH_NOARGS, "True if opened 'r+b'."},
    {NULL, NULL, 0, NULL},
};

/* The methods of every file defining them, in one table for the spec. */
static PyMethodDef *all_methods(void)
{
    static PyMethodDef all[64];
    const PyMethodDef *parts[] = {image_methods, pyqk_image_io_methods,
                                  pyqk_image_info_methods};
    size_t n = 0;

    for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++)
        for (const PyMethodDef *m = parts[p]; m->ml_name; m++)
            if (n + 1 < sizeof all / sizeof all[0])
                all[n++] = *m;
    return all;
}

static int register_as_raw_io(PyObject *type)
{
    PyObject *io = PyImport_ImportModule("io");
    PyObject *r;

    if (!io)
        return -1;
    r = PyObject_GetAttrString(io, "RawIOBase");
    Py_DECREF(io);
    if (!r)
        return -1;
    io = PyObject_CallMethod(r, "register", "O", type);
    Py_DECREF(r);
    Py_XDECREF(io);
    return io ? 0 : -1;
}

static int find_base(void)
{
    PyObject *io = PyImport_ImportModule("_io");
    PyObject *base;

    if (!io)
        return -1;
    base = PyObject_GetAttrString(io, "_RawIOBase");
    Py_DECREF(io);
    if (!base)
        return -1;
    if (!PyType_Check(base)) {
        Py_DECREF(base);
        PyErr_SetString(PyExc_TypeError, "_io._RawIOBase is not a type");
        return -1;
    }
    image_base = (PyTypeObject *)base;
    return 0;
}

int pyqk_image_init(PyObject *module)
{
    static PyType_Slot slots[] = {
        {Py_tp_dealloc, image_dealloc},
        {Py_tp_traverse, image_traverse},
        {Py_tp_repr, image_repr},
        {Py_tp_getset, image_getset},
        {Py_tp_methods, NULL},
        {Py_tp_doc, "An open image: an io.RawIOBase over its guest disk."},
        {0, NULL},
    };
    static PyType_Spec spec = {
        .name = "qcowkit.Image",
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
        .slots = slots,
    };
    const Py_ssize_t align = alignof(max_align_t);
    PyObject *type, *bases;

    if (find_base() < 0)
        return -1;
    state_offset = (image_base->tp_basicsize + align - 1) / align * align;
    spec.basicsize =
        (int)(state_offset + (Py_ssize_t)sizeof(struct pyqk_image));
    slots[4].pfunc = all_methods();
    bases = PyTuple_Pack(1, (PyObject *)image_base);
    if (!bases)
        return -1;
    type = PyType_FromSpecWithBases(&spec, bases);
    Py_DECREF(bases);
    if (!type)
        return -1;
    if (register_as_raw_io(type) < 0 ||
        PyModule_AddObject(module, "Image", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    Py_INCREF(type);
    pyqk_image_type = (PyTypeObject *)type;
    return 0;
}
