/*
 * cx_pkg.sub2: a package submodule with multi-phase init (PEP 489).
 * The module name comes from the spec; sibling() performs a package-relative
 * import ("from . import sub") from C using the module's own globals.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *
sub2_where(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyModule_GetNameObject(self);
}

static PyObject *
sub2_package(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_GetAttrString(self, "__package__");
}

static PyObject *
sub2_sibling(PyObject *self, PyObject *args)
{
    /* sibling(name) -> `from . import <name>` evaluated in this module */
    PyObject *name, *globals, *fromlist, *empty, *pkg, *result;

    if (!PyArg_ParseTuple(args, "U:sibling", &name)) {
        return NULL;
    }
    globals = PyModule_GetDict(self); /* borrowed */
    if (globals == NULL) {
        return NULL;
    }
    fromlist = PyTuple_Pack(1, name);
    if (fromlist == NULL) {
        return NULL;
    }
    empty = PyUnicode_FromString("");
    if (empty == NULL) {
        Py_DECREF(fromlist);
        return NULL;
    }
    /* level=1 with an empty name: resolves to the parent package */
    pkg = PyImport_ImportModuleLevelObject(empty, globals, NULL, fromlist, 1);
    Py_DECREF(empty);
    Py_DECREF(fromlist);
    if (pkg == NULL) {
        return NULL;
    }
    result = PyObject_GetAttr(pkg, name);
    if (result == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        /* like the IMPORT_FROM opcode: a missing name is an ImportError */
        PyObject *pkgname;

        PyErr_Clear();
        pkgname = PyObject_GetAttrString(pkg, "__name__");
        if (pkgname != NULL) {
            PyErr_Format(PyExc_ImportError, "cannot import name %R from %R",
                         name, pkgname);
            Py_DECREF(pkgname);
        }
    }
    Py_DECREF(pkg);
    return result;
}

static int
sub2_exec(PyObject *mod)
{
    PyObject *name = PyModule_GetNameObject(mod);
    int rc;

    if (name == NULL) {
        return -1;
    }
    /* record the name the module had while exec ran */
    rc = PyModule_AddObject(mod, "EXEC_NAME", name);
    if (rc < 0) {
        Py_DECREF(name);
        return -1;
    }
    return PyModule_AddStringConstant(mod, "KIND", "multi-phase");
}

static PyMethodDef sub2_methods[] = {
    {"where", sub2_where, METH_NOARGS, "the module's __name__"},
    {"package", sub2_package, METH_NOARGS, "the module's __package__"},
    {"sibling", sub2_sibling, METH_VARARGS, "from . import <name>"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot sub2_slots[] = {
    {Py_mod_exec, (void *)sub2_exec},
    {0, NULL},
};

static struct PyModuleDef sub2_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_pkg.sub2",
    .m_doc = "Multi-phase package submodule (test extension).",
    .m_size = 0,
    .m_methods = sub2_methods,
    .m_slots = sub2_slots,
};

PyMODINIT_FUNC
PyInit_sub2(void)
{
    return PyModuleDef_Init(&sub2_module);
}
