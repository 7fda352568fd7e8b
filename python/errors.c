/* errors.c - qcowkit.Error: an OSError with the library's message. */
#include <string.h>

#include "qcowkit-py.h"

PyObject *pyqk_error_type;

int pyqk_errors_init(PyObject *module)
{
    pyqk_error_type = PyErr_NewExceptionWithDoc(
        "qcowkit.Error",
        "A libqcowkit call failed: errno and the library's one-line message.",
        PyExc_OSError, NULL);
    if (!pyqk_error_type)
        return -1;
    Py_INCREF(pyqk_error_type);
    if (PyModule_AddObject(module, "Error", pyqk_error_type) < 0) {
        Py_DECREF(pyqk_error_type);
        return -1;
    }
    return 0;
}

void pyqk_errmsg_copy(char *buf, size_t len)
{
    const char *msg = qcowkit_errmsg();

    snprintf(buf, len, "%s", msg ? msg : "");
}

/* "message (ValueError: text)": what the callback's exception said. */
static PyObject *message_with_cause(const char *message, PyObject *cause)
{
    PyObject *text = PyObject_Str(cause);
    PyObject *joined;

    if (!text) {
        PyErr_Clear();
        return PyUnicode_FromString(message);
    }
    joined = PyUnicode_FromFormat("%s (%s: %U)", message,
                                  Py_TYPE(cause)->tp_name, text);
    Py_DECREF(text);
    return joined;
}

PyObject *pyqk_raise(int err, const char *message, PyObject *cause)
{
    int code = err < 0 ? -err : err;
    PyObject *text, *exc;

    if (!message || !*message)
        message = strerror(code);
    text = cause ? message_with_cause(message, cause)
                 : PyUnicode_FromString(message);
    if (!text) {
        Py_XDECREF(cause);
        return NULL;
    }
    exc = PyObject_CallFunction(pyqk_error_type, "iN", code, text);
    if (!exc) {
        Py_XDECREF(cause);
        return NULL;
    }
    if (cause)
        PyException_SetCause(exc, cause); /* steals cause */
    PyErr_SetObject(pyqk_error_type, exc);
    Py_DECREF(exc);
    return NULL;
}

void pyqk_raise_unsupported(const char *message)
{
    PyObject *io = PyImport_ImportModule("io");
    PyObject *type =
        io ? PyObject_GetAttrString(io, "UnsupportedOperation") : NULL;

    Py_XDECREF(io);
    if (type)
        PyErr_SetString(type, message);
    Py_XDECREF(type);
}
