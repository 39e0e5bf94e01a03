/*
 * cx_twin_a: one of two images that define the same symbol names.
 *
 * Both cx_twin_a and cx_twin_b define a static 'shared_name', a non-static
 * (exported) 'twin_value' and a non-static function 'twin_get'. Loaded in
 * one process, each image must keep using its own definitions: neither may
 * interpose the other's symbols.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int shared_name = 1001;
int twin_value = 11;
int twin_get(void);
void twin_set(int v);
const char *twin_ident(void);

int
twin_get(void)
{
    return twin_value;
}

void
twin_set(int v)
{
    twin_value = v;
}

const char *
twin_ident(void)
{
    return "a";
}

static PyObject *
tw_value(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    /* called through the exported function, so interposition would show */
    return PyLong_FromLong(twin_get());
}

static PyObject *
tw_shared(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(shared_name);
}

static PyObject *
tw_set_value(PyObject *self, PyObject *args)
{
    int v;

    (void)self;
    if (!PyArg_ParseTuple(args, "i:set_value", &v)) {
        return NULL;
    }
    twin_set(v);
    Py_RETURN_NONE;
}

static PyObject *
tw_set_shared(PyObject *self, PyObject *args)
{
    int v;

    (void)self;
    if (!PyArg_ParseTuple(args, "i:set_shared", &v)) {
        return NULL;
    }
    shared_name = v;
    Py_RETURN_NONE;
}

static PyObject *
tw_ident(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyUnicode_FromString(twin_ident());
}

static PyObject *
tw_addrs(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return Py_BuildValue("(NNN)", PyLong_FromVoidPtr((void *)&twin_value),
                         PyLong_FromVoidPtr((void *)&shared_name),
                         PyLong_FromVoidPtr((void *)(uintptr_t)&twin_get));
}

static PyMethodDef tw_methods[] = {
    {"value", tw_value, METH_NOARGS, "this image's twin_value (via twin_get)"},
    {"shared", tw_shared, METH_NOARGS, "this image's static shared_name"},
    {"set_value", tw_set_value, METH_VARARGS, "set this image's twin_value"},
    {"set_shared", tw_set_shared, METH_VARARGS, "set this image's shared_name"},
    {"ident", tw_ident, METH_NOARGS, "'a'"},
    {"addrs", tw_addrs, METH_NOARGS, "(&twin_value, &shared_name, &twin_get)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tw_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_twin_a",
    .m_doc = "Same-named symbols in two images (test extension).",
    .m_size = -1,
    .m_methods = tw_methods,
};

PyMODINIT_FUNC
PyInit_cx_twin_a(void)
{
    return PyModule_Create(&tw_module);
}
