/* skdemo._speedups: a small C extension (single-phase init). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* fnv1a(data: bytes) -> int: the 64-bit FNV-1a hash. */
static PyObject *fnv1a(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char *p = view.buf;
    for (Py_ssize_t i = 0; i < view.len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(h);
}

/* sum_squares(iterable of int) -> int */
static PyObject *sum_squares(PyObject *self, PyObject *arg)
{
    PyObject *it = PyObject_GetIter(arg), *item;
    if (it == NULL)
        return NULL;
    long long total = 0;
    while ((item = PyIter_Next(it)) != NULL) {
        long long v = PyLong_AsLongLong(item);
        Py_DECREF(item);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(it);
            return NULL;
        }
        total += v * v;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromLongLong(total);
}

static PyMethodDef methods[] = {
    {"fnv1a", fnv1a, METH_O, "64-bit FNV-1a hash of a bytes-like object."},
    {"sum_squares", sum_squares, METH_O, "Sum of the squares of some integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "skdemo._speedups", "C helpers of skdemo.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "__version__", SKDEMO_VERSION) < 0)
        Py_CLEAR(m);
    return m;
}
