/* module.c - the module qcowkit: functions, constants, version. */
#include "qcowkit-py.h"

static PyMethodDef module_methods[] = {
    {"open", PYQK_KW_METHOD(pyqk_open), METH_VARARGS | METH_KEYWORDS,
     "open(path, mode='rb', *, format=None, backing_format=None, "
     "password=None, force_share=False, cache_size=0)\n--\n\n"
     "Open a qcow or raw image; returns an io.RawIOBase over its guest "
     "disk."},
    {"open_fileobj", PYQK_KW_METHOD(pyqk_open_fileobj),
     METH_VARARGS | METH_KEYWORDS,
     "open_fileobj(fileobj, mode='rb', *, name=None, format=None, "
     "backing_format=None, password=None, force_share=False, "
     "cache_size=0)\n--\n\n"
     "Open an image stored in a Python file object (readinto or read, "
     "seek; write for 'r+b')."},
    {"create", PYQK_KW_METHOD(pyqk_create), METH_VARARGS | METH_KEYWORDS,
     "create(path, size, *, format='qcow', backing_file=None, "
     "backing_format=None, cluster_size=0, password=None)\n--\n\n"
     "Create an image (path must not exist).  size may be None with a "
     "backing file: the backing file's size."},
    {"check", PYQK_KW_METHOD(pyqk_check), METH_VARARGS | METH_KEYWORDS,
     "check(path, repair=None)\n--\n\n"
     "Check a qcow image's tables (repair: None, 'leaks' or 'all'); "
     "returns the report as a dict with the keys of "
     "`qcowkit check --output=json`, plus 'problems'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "qcowkit",
    .m_doc = "QEMU qcow (version 1) and raw disk images, through libqcowkit.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int add_constants(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "EXTENT_ALLOCATED",
                                QCOWKIT_EXTENT_ALLOCATED) < 0 ||
        PyModule_AddIntConstant(module, "EXTENT_COMPRESSED",
                                QCOWKIT_EXTENT_COMPRESSED) < 0 ||
        PyModule_AddIntConstant(module, "EXTENT_HOST_OFFSET",
                                QCOWKIT_EXTENT_HOST_OFFSET) < 0 ||
        PyModule_AddIntConstant(module, "EXTENT_ZERO", QCOWKIT_EXTENT_ZERO) < 0)
        return -1;
    if (PyModule_AddStringConstant(module, "__version__", qcowkit_version()) <
        0)
        return -1;
    return 0;
}

PyMODINIT_FUNC PyInit_qcowkit(void)
{
    PyObject *module = PyModule_Create(&module_def);

    if (!module)
        return NULL;
    if (pyqk_errors_init(module) < 0 || pyqk_image_init(module) < 0 ||
        pyqk_extents_init(module) < 0 || add_constants(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
