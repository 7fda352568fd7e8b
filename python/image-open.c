/* image-open.c - qcowkit.open() and qcowkit.open_fileobj(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit-py.h"

int pyqk_parse_format(PyObject *name, enum qcowkit_format *format)
{
    const char *s;

    if (!name || name == Py_None) {
        *format = QCOWKIT_FORMAT_AUTO;
        return 0;
    }
    s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    if (s && strcmp(s, "qcow") == 0)
        *format = QCOWKIT_FORMAT_QCOW;
    else if (s && strcmp(s, "raw") == 0)
        *format = QCOWKIT_FORMAT_RAW;
    else {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError,
                         "format must be 'qcow', 'raw' or None, not %R", name);
        return -1;
    }
    return 0;
}

int pyqk_key_get(PyObject *password, Py_buffer *view, const uint8_t **key,
                 size_t *key_len)
{
    Py_ssize_t len;
    const char *s;

    view->obj = NULL;
    *key = NULL;
    *key_len = 0;
    if (!password || password == Py_None)
        return 0;
    if (PyUnicode_Check(password)) {
        s = PyUnicode_AsUTF8AndSize(password, &len);
        if (!s)
            return -1;
        *key = (const uint8_t *)s;
        *key_len = (size_t)len;
        return 0;
    }
    if (PyObject_GetBuffer(password, view, PyBUF_SIMPLE) < 0)
        return -1;
    *key = view->buf;
    *key_len = (size_t)view->len;
    return 0;
}

void pyqk_key_release(Py_buffer *view, const uint8_t *key)
{
    (void)key;
    if (view->obj)
        PyBuffer_Release(view);
}

/* mode: 'rb' (or 'r') or 'r+b' (or 'rb+', 'r+'); 1 if writable. */
static int parse_mode(PyObject *mode)
{
    static const char *const ro[] = {"r", "rb", "br"};
    static const char *const rw[] = {"r+", "r+b", "rb+", "+rb", "br+", "b+r"};
    const char *s = mode && PyUnicode_Check(mode) ? PyUnicode_AsUTF8(mode)
                    : mode                        ? NULL
                                                  : "rb";

    for (size_t i = 0; s && i < sizeof ro / sizeof ro[0]; i++)
        if (strcmp(s, ro[i]) == 0)
            return 0;
    for (size_t i = 0; s && i < sizeof rw / sizeof rw[0]; i++)
        if (strcmp(s, rw[i]) == 0)
            return 1;
    if (!PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "mode must be 'rb' or 'r+b', not %R",
                     mode);
    return -1;
}

/* Fill opts from the keyword arguments; keeps the key in *view. */
static int fill_opts(const struct pyqk_open_args *a,
                     struct qcowkit_open_opts *opts, Py_buffer *view,
                     int *writable)
{
    qcowkit_open_opts_init(opts);
    *writable = parse_mode(a->mode);
    if (*writable < 0 || pyqk_parse_format(a->format, &opts->format) < 0 ||
        pyqk_parse_format(a->backing_format, &opts->backing_format) < 0)
        return -1;
    opts->flags = *writable ? QCOWKIT_OPEN_RDWR : QCOWKIT_OPEN_RDONLY;
    if (a->force_share)
        opts->flags |= QCOWKIT_OPEN_FORCE_SHARE;
    opts->cache_size = a->cache_size;
    return pyqk_key_get(a->password, view, &opts->key, &opts->key_len);
}

/* A new image object around an open handle; takes img and io. */
static PyObject *wrap(struct qcowkit_image *img, struct qcowkit_io *io,
                      struct pyqk_fileobj *fileobj, const char *path,
                      const char *name, PyObject *name_obj, int writable)
{
    PyObject *self = PyType_GenericAlloc(pyqk_image_type, 0);
    struct qcowkit_info info;
    struct pyqk_image *st;

    if (!self) {
        qcowkit_close(img);
        qcowkit_io_close(io);
        return NULL;
    }
    st = pyqk_image_state(self);
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->idle, NULL);
    st->img = img;
    st->io = io;
    st->fileobj = fileobj;
    st->writable = writable;
    Py_INCREF(name_obj);
    st->name_obj = name_obj;
    st->path = path ? strdup(path) : NULL;
    st->name = strdup(name);
    qcowkit_info_init(&info);
    if (qcowkit_get_info(img, &info) == 0)
        st->size = info.virtual_size;
    if ((path && !st->path) || !st->name) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return self;
}

static char *open_kwlist[] = {"path",           "mode",     "format",
                              "backing_format", "password", "force_share",
                              "cache_size",     NULL};

/* cache_size=: an int >= 0; a negative one is refused, not wrapped. */
static int cache_size_arg(PyObject *obj, void *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);

    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return 0;
    *(unsigned long long *)out = v;
    return 1;
}

PyObject *pyqk_open(PyObject *module, PyObject *args, PyObject *kwargs)
{
    struct pyqk_open_args a = {0};
    struct qcowkit_open_opts opts;
    struct qcowkit_image *img = NULL;
    PyObject *path_obj, *path_bytes = NULL, *self = NULL;
    char msg[1024];
    Py_buffer view;
    const char *path;
    int writable, err;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "O|O$OOOpO&", open_kwlist, &path_obj, &a.mode,
            &a.format, &a.backing_format, &a.password, &a.force_share,
            cache_size_arg, &a.cache_size))
        return NULL;
    if (!PyUnicode_FSConverter(path_obj, &path_bytes))
        return NULL;
    path = PyBytes_AS_STRING(path_bytes);
    if (fill_opts(&a, &opts, &view, &writable) < 0) {
        Py_DECREF(path_bytes);
        return NULL;
    }
    PyThreadState *ts = PyEval_SaveThread();
    err = qcowkit_open(path, &opts, &img);
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    PyEval_RestoreThread(ts);
    pyqk_key_release(&view, opts.key);
    if (err < 0)
        pyqk_raise(err, msg, NULL);
    else
        self = wrap(img, NULL, NULL, path, path, path_obj, writable);
    Py_DECREF(path_bytes);
    return self;
}

/* The name in messages: name=, else fileobj.name if a str. */
static PyObject *fileobj_name(PyObject *fileobj, PyObject *name)
{
    if (name && name != Py_None) {
        Py_INCREF(name);
        return name;
    }
    name = PyObject_GetAttrString(fileobj, "name");
    if (name && PyUnicode_Check(name))
        return name;
    Py_XDECREF(name);
    PyErr_Clear();
    return PyUnicode_FromString("<fileobj>");
}

static char *fileobj_kwlist[] = {"fileobj",     "mode",           "name",
                                 "format",      "backing_format", "password",
                                 "force_share", "cache_size",     NULL};

PyObject *pyqk_open_fileobj(PyObject *module, PyObject *args, PyObject *kwargs)
{
    struct pyqk_open_args a = {0};
    struct qcowkit_open_opts opts;
    struct qcowkit_image *img = NULL;
    struct qcowkit_io *io = NULL;
    struct pyqk_fileobj *state = NULL;
    PyObject *fileobj, *name_arg = NULL, *name_obj, *self = NULL;
    char msg[1024];
    Py_buffer view;
    const char *name;
    int writable, err;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "O|O$OOOOpO&", fileobj_kwlist, &fileobj, &a.mode,
            &name_arg, &a.format, &a.backing_format, &a.password,
            &a.force_share, cache_size_arg, &a.cache_size))
        return NULL;
    name_obj = fileobj_name(fileobj, name_arg);
    if (!name_obj)
        return NULL;
    name = PyUnicode_AsUTF8(name_obj);
    if (!name || fill_opts(&a, &opts, &view, &writable) < 0) {
        Py_DECREF(name_obj);
        return NULL;
    }
    err = pyqk_fileobj_new(fileobj, name, &io, &state);
    if (err == 0) {
        PyThreadState *ts = PyEval_SaveThread();
        err = qcowkit_open_io(io, name, &opts, &img);
        if (err < 0)
            pyqk_errmsg_copy(msg, sizeof msg);
        PyEval_RestoreThread(ts);
    } else {
        pyqk_errmsg_copy(msg, sizeof msg);
    }
    pyqk_key_release(&view, opts.key);
    if (err < 0) {
        pyqk_raise(err, msg, pyqk_fileobj_take_error(state));
        qcowkit_io_close(io);
    } else {
        self = wrap(img, io, state, NULL, name, name_obj, writable);
    }
    Py_DECREF(name_obj);
    return self;
}

PyObject *pyqk_backing_path(const char *image, const char *backing)
{
    const char *slash = strrchr(image, '/');
    size_t dir_len, len;
    PyObject *path;
    char *joined;

    if (backing[0] == '/' || !slash)
        return PyUnicode_DecodeFSDefault(backing);
    dir_len = (size_t)(slash - image) + 1;
    len = dir_len + strlen(backing);
    joined = PyMem_Malloc(len + 1);
    if (!joined)
        return PyErr_NoMemory();
    memcpy(joined, image, dir_len);
    strcpy(joined + dir_len, backing);
    path = PyUnicode_DecodeFSDefaultAndSize(joined, (Py_ssize_t)len);
    PyMem_Free(joined);
    return path;
}
