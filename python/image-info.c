/*
 * image-info.c - info() with the keys of `qcowkit info --output=json`,
 * and extents(), an iterator over qcowkit_block_status_chain.
 */
#include <sys/stat.h>

#include "qcowkit-py.h"

static int set_item(PyObject *dict, const char *key, PyObject *value)
{
    int err;

    if (!value)
        return -1;
    err = PyDict_SetItemString(dict, key, value);
    Py_DECREF(value);
    return err;
}

/* The dictionary qemu-img info prints for one image, in its order. */
static PyObject *info_dict(const struct pyqk_image *st,
                           const struct qcowkit_info *info)
{
    uint64_t vsize = info->virtual_size;
    PyObject *d = PyDict_New();
    struct stat sb;
    int bad = !d;

    /* QEMU sees raw files in whole sectors. */
    if (info->format == QCOWKIT_FORMAT_RAW)
        vsize = (vsize + 511) & ~UINT64_C(511);
    bad = bad ||
          set_item(d, "virtual-size", PyLong_FromUnsignedLongLong(vsize)) < 0;
    bad = bad ||
          set_item(d, "filename",
                   PyUnicode_DecodeFSDefault(st->path ? st->path : st->name));
    if (info->cluster_size)
        bad = bad || set_item(d, "cluster-size",
                              PyLong_FromUnsignedLong(info->cluster_size)) < 0;
    bad =
        bad ||
        set_item(d, "format",
                 PyUnicode_FromString(
                     info->format == QCOWKIT_FORMAT_QCOW ? "qcow" : "raw")) < 0;
    if (st->path && stat(st->path, &sb) == 0)
        bad = bad || set_item(d, "actual-size",
                              PyLong_FromUnsignedLongLong(
                                  (unsigned long long)sb.st_blocks * 512)) < 0;
    if (info->backing_file[0])
        bad = bad || set_item(d, "full-backing-filename",
                              pyqk_backing_path(st->path ? st->path : st->name,
                                                info->backing_file)) < 0;
    if (info->crypt_method)
        bad = bad || set_item(d, "encrypted", Py_NewRef(Py_True)) < 0;
    if (info->backing_file[0])
        bad =
            bad || set_item(d, "backing-filename",
                            PyUnicode_DecodeFSDefault(info->backing_file)) < 0;
    bad = bad || set_item(d, "dirty-flag", Py_NewRef(Py_False)) < 0;
    if (bad) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *image_info(PyObject *self, PyObject *unused)
{
    struct qcowkit_image *img = pyqk_image_enter(self);
    struct qcowkit_info info;
    char msg[1024];
    int err;

    (void)unused;
    if (!img)
        return NULL;
    qcowkit_info_init(&info);
    Py_BEGIN_ALLOW_THREADS err = qcowkit_get_info(img, &info);
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    Py_END_ALLOW_THREADS pyqk_image_leave(self);
    if (err < 0)
        return pyqk_image_error(self, err, msg);
    return info_dict(pyqk_image_state(self), &info);
}

/* ------------------------------------------------------------- extents */

PyTypeObject *pyqk_extents_type;

struct extents {
    PyObject_HEAD PyObject *image;
    uint64_t pos, end;
};

static PyObject *image_extents(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"offset", "length", NULL};
    struct pyqk_image *st = pyqk_image_state(self);
    unsigned long long offset = 0;
    PyObject *length = Py_None;
    uint64_t end = st->size;
    struct extents *it;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "|KO:extents", kwlist, &offset,
                                     &length))
        return NULL;
    if (length != Py_None) {
        unsigned long long n = PyLong_AsUnsignedLongLong(length);
        if (n == (unsigned long long)-1 && PyErr_Occurred())
            return NULL;
        if (offset <= st->size && n < st->size - offset)
            end = offset + n;
    }
    it = PyObject_New(struct extents, pyqk_extents_type);
    if (!it)
        return NULL;
    Py_INCREF(self);
    it->image = self;
    it->pos = offset;
    it->end = end;
    return (PyObject *)it;
}

static PyObject *extents_next(PyObject *obj)
{
    struct extents *it = (struct extents *)obj;
    struct qcowkit_chain_extent x;
    struct qcowkit_image *img;
    char msg[1024];
    int err;

    if (it->pos >= it->end)
        return NULL;
    img = pyqk_image_enter(it->image);
    if (!img)
        return NULL;
    qcowkit_chain_extent_init(&x);
    Py_BEGIN_ALLOW_THREADS err =
        qcowkit_block_status_chain(img, it->pos, it->end - it->pos, &x);
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    Py_END_ALLOW_THREADS pyqk_image_leave(it->image);
    if (err < 0)
        return pyqk_image_error(it->image, err, msg);
    if (x.length == 0 || x.length > it->end - it->pos)
        x.length = it->end - it->pos;
    it->pos += x.length;
    if (x.flags & QCOWKIT_EXTENT_HOST_OFFSET)
        return Py_BuildValue("(KKIK)", (unsigned long long)x.offset,
                             (unsigned long long)x.length, x.flags,
                             (unsigned long long)x.host_offset);
    return Py_BuildValue("(KKIO)", (unsigned long long)x.offset,
                         (unsigned long long)x.length, x.flags, Py_None);
}

static void extents_dealloc(PyObject *obj)
{
    struct extents *it = (struct extents *)obj;
    PyTypeObject *tp = Py_TYPE(obj);

    Py_XDECREF(it->image);
    PyObject_Free(obj);
    Py_DECREF(tp);
}

int pyqk_extents_init(PyObject *module)
{
    static PyType_Slot slots[] = {
        {Py_tp_dealloc, extents_dealloc},
        {Py_tp_iter, PyObject_SelfIter},
        {Py_tp_iternext, extents_next},
        {0, NULL},
    };
    static PyType_Spec spec = {
        .name = "qcowkit.Extents",
        .basicsize = sizeof(struct extents),
        .flags = Py_TPFLAGS_DEFAULT,
        .slots = slots,
    };

    (void)module;
    pyqk_extents_type = (PyTypeObject *)PyType_FromSpec(&spec);
    return pyqk_extents_type ? 0 : -1;
}

PyMethodDef pyqk_image_info_methods[] = {
    {"info", image_info, METH_NOARGS,
     "The image's description, with the keys of "
     "`qcowkit info --output=json`."},
    {"extents", PYQK_KW_METHOD(image_extents), METH_VARARGS | METH_KEYWORDS,
     "extents(offset=0, length=None): iterate (offset, length, flags, "
     "host_offset) as the guest sees the image through its backing chain; "
     "flags are EXTENT_*; host_offset is None without EXTENT_HOST_OFFSET."},
    {NULL, NULL, 0, NULL},
};
