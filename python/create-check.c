/* create-check.c - qcowkit.create() and qcowkit.check(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcowkit-py.h"

/* The backing file's virtual size, opened as qemu-img create opens it. */
static int backing_size(const char *path, const char *backing,
                        enum qcowkit_format format, uint64_t *size, char *msg,
                        size_t msg_len)
{
    struct qcowkit_open_opts o;
    struct qcowkit_image *b = NULL;
    struct qcowkit_info info;
    PyObject *full = pyqk_backing_path(path, backing);
    PyObject *full_bytes = NULL;
    int err;

    if (!full || !PyUnicode_FSConverter(full, &full_bytes)) {
        Py_XDECREF(full);
        return -ENOMEM;
    }
    Py_DECREF(full);
    qcowkit_open_opts_init(&o);
    o.format = format;
    o.flags = QCOWKIT_OPEN_RDONLY | QCOWKIT_OPEN_NO_BACKING |
              QCOWKIT_OPEN_FORCE_SHARE;
    PyThreadState *ts = PyEval_SaveThread();
    err = qcowkit_open(PyBytes_AS_STRING(full_bytes), &o, &b);
    if (err == 0) {
        qcowkit_info_init(&info);
        err = qcowkit_get_info(b, &info);
        *size = info.virtual_size;
    }
    if (err < 0)
        pyqk_errmsg_copy(msg, msg_len);
    qcowkit_close(b);
    PyEval_RestoreThread(ts);
    Py_DECREF(full_bytes);
    return err;
}

/* cluster_size=: an int in 0..UINT32_MAX (0: the default), never wrapped. */
static int cluster_size_arg(PyObject *obj, void *out)
{
    unsigned long v = PyLong_AsUnsignedLong(obj);

    if (v == (unsigned long)-1 && PyErr_Occurred())
        return 0;
    if (v > UINT32_MAX) {
        PyErr_Format(PyExc_OverflowError, "cluster_size %lu is too large", v);
        return 0;
    }
    *(unsigned int *)out = (unsigned int)v;
    return 1;
}

PyObject *pyqk_create(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "path",           "size",         "format",   "backing_file",
        "backing_format", "cluster_size", "password", NULL};
    PyObject *path_obj, *size_obj, *format = NULL, *backing_obj = Py_None;
    PyObject *backing_format = NULL, *password = NULL;
    PyObject *path_bytes = NULL, *backing_bytes = NULL;
    struct qcowkit_create_opts opts;
    enum qcowkit_format bfmt;
    unsigned int cluster_size = 0;
    char msg[1024] = "";
    Py_buffer key_view;
    int err = 0;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "OO|$OOOO&O:create", kwlist, &path_obj, &size_obj,
            &format, &backing_obj, &backing_format, cluster_size_arg,
            &cluster_size, &password))
        return NULL;
    qcowkit_create_opts_init(&opts);
    if (!format)
        opts.format = QCOWKIT_FORMAT_QCOW;
    else if (pyqk_parse_format(format, &opts.format) < 0)
        return NULL;
    if (format == Py_None)
        opts.format = QCOWKIT_FORMAT_QCOW;
    if (pyqk_parse_format(backing_format, &bfmt) < 0)
        return NULL;
    if (!PyUnicode_FSConverter(path_obj, &path_bytes))
        return NULL;
    if (backing_obj != Py_None &&
        !PyUnicode_FSConverter(backing_obj, &backing_bytes)) {
        Py_DECREF(path_bytes);
        return NULL;
    }
    opts.backing_file = backing_bytes ? PyBytes_AS_STRING(backing_bytes) : NULL;
    opts.cluster_size = cluster_size;
    if (size_obj != Py_None) {
        opts.size = PyLong_AsUnsignedLongLong(size_obj);
        if (opts.size == (uint64_t)-1 && PyErr_Occurred())
            goto out;
    } else if (!opts.backing_file) {
        PyErr_SetString(PyExc_TypeError,
                        "size may be None only with a backing_file");
        goto out;
    }
    /* Like qemu-img: the backing file must open; it gives a missing size. */
    if (opts.backing_file && (size_obj == Py_None || backing_format))
        err = backing_size(
            PyBytes_AS_STRING(path_bytes), opts.backing_file, bfmt,
            size_obj == Py_None ? &opts.size : &(uint64_t){0}, msg, sizeof msg);
    if (err == 0 &&
        pyqk_key_get(password, &key_view, &opts.key, &opts.key_len) < 0)
        goto out;
    if (err == 0) {
        PyThreadState *ts = PyEval_SaveThread();
        err = qcowkit_create(PyBytes_AS_STRING(path_bytes), &opts, 0);
        if (err < 0)
            pyqk_errmsg_copy(msg, sizeof msg);
        PyEval_RestoreThread(ts);
        pyqk_key_release(&key_view, opts.key);
    }
    if (err < 0)
        pyqk_raise(err, msg, NULL);
out:
    Py_DECREF(path_bytes);
    Py_XDECREF(backing_bytes);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

/* ----------------------------------------------------------------- check */

/* The problems the check reports, kept in C: it runs without the GIL. */
struct problems {
    char **lines;
    size_t n, cap;
    int lost;
};

static void collect(void *opaque, const char *message)
{
    struct problems *p = opaque;
    char **grown;

    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        grown = realloc(p->lines, cap * sizeof *grown);
        if (!grown) {
            p->lost = 1;
            return;
        }
        p->lines = grown;
        p->cap = cap;
    }
    p->lines[p->n] = strdup(message);
    if (p->lines[p->n])
        p->n++;
    else
        p->lost = 1;
}

static void problems_free(struct problems *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->lines[i]);
    free(p->lines);
    memset(p, 0, sizeof *p);
}

static int run_check(struct qcowkit_image *img, unsigned flags,
                     struct problems *p, struct qcowkit_check_report *r)
{
    problems_free(p);
    qcowkit_check_report_init(r);
    return qcowkit_check(img, flags, collect, p, r);
}

/*
 * As `qcowkit check -r`: leaks are not given back while there are
 * corruptions (the clusters may still hold data) unless repair is 'all';
 * after a repair, the image is checked again.  *refused tells the first.
 */
static int check_and_repair(struct qcowkit_image *img, unsigned repair,
                            struct problems *p, struct qcowkit_check_report *r,
                            int *refused)
{
    uint64_t corruptions_fixed, leaks_fixed;
    int err = 0;

    *refused = 0;
    if (repair == QCOWKIT_CHECK_REPAIR_LEAKS) {
        err = run_check(img, 0, p, r);
        if (err == 0 && r->corruptions) {
            *refused = 1;
            repair = 0;
        }
    }
    if (err == 0)
        err = run_check(img, repair, p, r);
    if (err < 0 || !(r->corruptions_fixed || r->leaks_fixed))
        return err;
    corruptions_fixed = r->corruptions_fixed;
    leaks_fixed = r->leaks_fixed;
    err = run_check(img, 0, p, r);
    r->corruptions_fixed = corruptions_fixed;
    r->leaks_fixed = leaks_fixed;
    return err;
}

static PyObject *report_dict(const struct qcowkit_check_report *r,
                             const struct problems *p, PyObject *path,
                             int refused)
{
    PyObject *lines = PyList_New((Py_ssize_t)p->n);

    if (!lines)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        PyObject *s = PyUnicode_DecodeUTF8(
            p->lines[i], (Py_ssize_t)strlen(p->lines[i]), "replace");
        if (!s) {
            Py_DECREF(lines);
            return NULL;
        }
        PyList_SET_ITEM(lines, (Py_ssize_t)i, s);
    }
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:i,s:K,s:K,s:K,s:O,s:s,s:K,s:N,s:O}",
        "image-end-offset", (unsigned long long)r->image_end_offset,
        "compressed-clusters", (unsigned long long)r->compressed_clusters,
        "total-clusters", (unsigned long long)r->total_clusters, "corruptions",
        (unsigned long long)r->corruptions, "corruptions-fixed",
        (unsigned long long)r->corruptions_fixed, "check-errors", 0, "leaks",
        (unsigned long long)r->leaks, "leaks-fixed",
        (unsigned long long)r->leaks_fixed, "allocated-clusters",
        (unsigned long long)r->allocated_clusters, "filename", path, "format",
        "qcow", "fragmented-clusters",
        (unsigned long long)r->fragmented_clusters, "problems", lines,
        "repair-refused", refused ? Py_True : Py_False);
}

static int parse_repair(PyObject *repair, unsigned *flags)
{
    const char *s = repair && repair != Py_None && PyUnicode_Check(repair)
                        ? PyUnicode_AsUTF8(repair)
                        : NULL;

    *flags = 0;
    if (!repair || repair == Py_None)
        return 0;
    if (s && strcmp(s, "leaks") == 0)
        *flags = QCOWKIT_CHECK_REPAIR_LEAKS;
    else if (s && strcmp(s, "all") == 0)
        *flags = QCOWKIT_CHECK_REPAIR_ALL;
    else {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError,
                         "repair must be None, 'leaks' or 'all', not %R",
                         repair);
        return -1;
    }
    return 0;
}

PyObject *pyqk_check(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"path", "repair", NULL};
    PyObject *path_obj, *repair_obj = Py_None, *path_bytes, *result = NULL;
    struct qcowkit_check_report report;
    struct qcowkit_open_opts o;
    struct qcowkit_image *img = NULL;
    struct problems p = {0};
    char msg[1024] = "";
    unsigned repair;
    int err, cerr, refused = 0;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:check", kwlist,
                                     &path_obj, &repair_obj) ||
        parse_repair(repair_obj, &repair) < 0 ||
        !PyUnicode_FSConverter(path_obj, &path_bytes))
        return NULL;
    qcowkit_open_opts_init(&o);
    o.flags = QCOWKIT_OPEN_NO_BACKING |
              (repair ? QCOWKIT_OPEN_RDWR : QCOWKIT_OPEN_RDONLY);
    PyThreadState *ts = PyEval_SaveThread();
    err = qcowkit_open(PyBytes_AS_STRING(path_bytes), &o, &img);
    if (err == 0)
        err = check_and_repair(img, repair, &p, &report, &refused);
    if (err < 0)
        pyqk_errmsg_copy(msg, sizeof msg);
    cerr = qcowkit_close(img);
    if (err == 0 && cerr < 0) {
        err = cerr;
        pyqk_errmsg_copy(msg, sizeof msg);
    }
    PyEval_RestoreThread(ts);
    if (err < 0)
        pyqk_raise(err, msg, NULL);
    else
        result = report_dict(&report, &p, path_obj, refused);
    problems_free(&p);
    Py_DECREF(path_bytes);
    return result;
}
