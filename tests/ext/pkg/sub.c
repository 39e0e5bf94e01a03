/*
 * cx_pkg.sub: a package submodule with single-phase init.
 * The init function is named after the last name component (PyInit_sub)
 * while m_name carries the fully qualified name.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int sub_calls = 0;

static PyObject *
sub_where(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    sub_calls++;
    return PyModule_GetNameObject(self);
}

static PyObject *
sub_calls_get(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(sub_calls);
}

static PyMethodDef sub_methods[] = {
    {"where", sub_where, METH_NOARGS, "the module's __name__"},
    {"calls", sub_calls_get, METH_NOARGS, "number of where() calls"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sub_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_pkg.sub",
    .m_doc = "Single-phase package submodule (test extension).",
    .m_size = -1,
    .m_methods = sub_methods,
};

PyMODINIT_FUNC
PyInit_sub(void)
{
    PyObject *m = PyModule_Create(&sub_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "KIND", "single-phase") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
