/* qcowkit-py.h - shared declarations of the Python module qcowkit. */
#ifndef QCOWKIT_PY_H
#define QCOWKIT_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

#include <qcowkit.h>

/* A METH_VARARGS | METH_KEYWORDS function as PyMethodDef wants it. */
#define PYQK_KW_METHOD(fn) ((PyCFunction)(void (*)(void))(fn))

/* ---------------------------------------------------------------- errors */

/* qcowkit.Error, made by pyqk_errors_init(). */
extern PyObject *pyqk_error_type;

int pyqk_errors_init(PyObject *module);

/*
 * Raise qcowkit.Error for the negative errno err, with the library's
 * message for this thread (read it right after the failing call, before
 * any other library call).  cause, if not NULL, is a Python exception a
 * backend callback raised: it becomes __cause__ and its text is appended.
 * Steals cause.  Returns NULL.
 */
PyObject *pyqk_raise(int err, const char *message, PyObject *cause);

/* Raise io.UnsupportedOperation(message). */
void pyqk_raise_unsupported(const char *message);

/* The library's message now, copied (it is per thread). */
void pyqk_errmsg_copy(char *buf, size_t len);

/* -------------------------------------------------------- fileobj backend */

struct pyqk_fileobj;

/*
 * A libqcowkit backend over a Python file object (readinto or read, seek,
 * write, flush, truncate).  Called with the GIL held.  The backend keeps a
 * reference to obj until the backend is closed.
 */
int pyqk_fileobj_new(PyObject *obj, const char *name, struct qcowkit_io **io,
                     struct pyqk_fileobj **state);

/* The exception the last failed callback raised (new reference) or NULL.
 * Call with the GIL held. */
PyObject *pyqk_fileobj_take_error(struct pyqk_fileobj *state);

/* For the image's tp_traverse: the file object (and a kept exception)
 * may refer back to the image, a cycle only the collector can end. */
int pyqk_fileobj_traverse(struct pyqk_fileobj *state, visitproc visit,
                          void *arg);

/* ----------------------------------------------------------------- image */

/* The image type: a subclass of _io._RawIOBase registered as io.RawIOBase. */
extern PyTypeObject *pyqk_image_type;

int pyqk_image_init(PyObject *module);

/*
 * An image object's own fields, laid out after those of its base class.
 * users and closing are guarded by lock: close() waits until no call is
 * in flight, so a handle is never closed under another thread's feet.
 */
struct pyqk_image {
    struct qcowkit_image *img; /* NULL once closed */
    struct qcowkit_io *io;     /* open_fileobj's backend, closed after img */
    struct pyqk_fileobj *fileobj;
    char *path; /* the file as opened; NULL over a file object */
    char *name; /* the name in messages */
    PyObject *name_obj;
    uint64_t size;
    uint64_t pos; /* changed only with the GIL held */
    int writable;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    unsigned users;
    int closing;
};

struct pyqk_image *pyqk_image_state(PyObject *self);

/* The handle for one call (ValueError if closed); pair with leave. */
struct qcowkit_image *pyqk_image_enter(PyObject *self);
void pyqk_image_leave(PyObject *self);

/* Raise qcowkit.Error for err from a call on this image. */
PyObject *pyqk_image_error(PyObject *self, int err, const char *message);

/* Methods defined in image-io.c and image-info.c. */
extern PyMethodDef pyqk_image_io_methods[];
extern PyMethodDef pyqk_image_info_methods[];

/* What open() and open_fileobj() share. */
struct pyqk_open_args {
    PyObject *mode;
    PyObject *format;
    PyObject *backing_format;
    PyObject *password;
    int force_share;
    unsigned long long cache_size;
};

PyObject *pyqk_open(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *pyqk_open_fileobj(PyObject *module, PyObject *args, PyObject *kwargs);

/* "qcow", "raw" or None (probe) to a format; -1 with ValueError set. */
int pyqk_parse_format(PyObject *name, enum qcowkit_format *format);

/*
 * Fill a key from password (None, str or bytes-like): *key is NULL for
 * None, else a buffer to release with pyqk_key_release().
 */
int pyqk_key_get(PyObject *password, Py_buffer *view, const uint8_t **key,
                 size_t *key_len);
void pyqk_key_release(Py_buffer *view, const uint8_t *key);

/* The backing file's path as qemu-img prints it (dirname(image) joined). */
PyObject *pyqk_backing_path(const char *image, const char *backing);

/* The extents iterator type, made by pyqk_extents_init(). */
extern PyTypeObject *pyqk_extents_type;

int pyqk_extents_init(PyObject *module);

/* --------------------------------------------------------- create, check */

PyObject *pyqk_create(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *pyqk_check(PyObject *module, PyObject *args, PyObject *kwargs);

#endif /* QCOWKIT_PY_H */
