/*
 * cx_multiphase: PEP 489 multi-phase init with both Py_mod_create and
 * Py_mod_exec slots. The create slot builds the module object itself from
 * spec.name; the exec slot adds attributes and records what it saw.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int create_calls = 0;
static int exec_calls = 0;

static PyObject *
mp_create(PyObject *spec, PyModuleDef *def)
{
    PyObject *name, *mod;

    if (def == NULL || def->m_size != 0) {
        PyErr_SetString(PyExc_SystemError, "cx_multiphase: unexpected def");
        return NULL;
    }
    name = PyObject_GetAttrString(spec, "name");
    if (name == NULL) {
        return NULL;
    }
    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "spec.name is not a str");
        Py_DECREF(name);
        return NULL;
    }
    mod = PyModule_NewObject(name);
    if (mod == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    if (PyObject_SetAttrString(mod, "created_from_spec_name", name) < 0) {
        Py_DECREF(name);
        Py_DECREF(mod);
        return NULL;
    }
    Py_DECREF(name);
    create_calls++;
    if (PyModule_AddIntConstant(mod, "create_serial", create_calls) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}

static int
mp_exec(PyObject *mod)
{
    PyObject *spec, *spec_name;

    exec_calls++;
    if (PyModule_AddIntConstant(mod, "answer", 42) < 0) {
        return -1;
    }
    if (PyModule_AddStringConstant(mod, "greeting", "hello from exec") < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(mod, "exec_serial", exec_calls) < 0) {
        return -1;
    }
    /* did the create slot run on this very object? */
    if (PyModule_AddIntConstant(mod, "exec_saw_create",
                                PyObject_HasAttrString(mod, "created_from_spec_name")) < 0) {
        return -1;
    }
    /* the import system sets __spec__ between create and exec */
    spec = PyObject_GetAttrString(mod, "__spec__");
    if (spec == NULL) {
        PyErr_Clear();
        Py_INCREF(Py_None);
        spec_name = Py_None;
    }
    else if (spec == Py_None) {
        spec_name = spec; /* transfer the reference */
    }
    else {
        spec_name = PyObject_GetAttrString(spec, "name");
        Py_DECREF(spec);
        if (spec_name == NULL) {
            return -1;
        }
    }
    if (PyModule_AddObject(mod, "exec_spec_name", spec_name) < 0) {
        Py_DECREF(spec_name);
        return -1;
    }
    return 0;
}

static PyObject *
mp_name(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyModule_GetNameObject(self);
}

static PyObject *
mp_spec_name(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *spec, *name;

    spec = PyObject_GetAttrString(self, "__spec__");
    if (spec == NULL) {
        return NULL;
    }
    if (spec == Py_None) {
        return spec;
    }
    name = PyObject_GetAttrString(spec, "name");
    Py_DECREF(spec);
    return name;
}

static PyObject *
mp_counts(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return Py_BuildValue("(ii)", create_calls, exec_calls);
}

static PyObject *
mp_whoami(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* the module object passed as self to module-level functions */
    Py_INCREF(self);
    return self;
}

static PyMethodDef mp_methods[] = {
    {"name", mp_name, METH_NOARGS, "the module's __name__"},
    {"spec_name", mp_spec_name, METH_NOARGS, "the module's __spec__.name"},
    {"counts", mp_counts, METH_NOARGS, "(create calls, exec calls)"},
    {"whoami", mp_whoami, METH_NOARGS, "returns the module object (self)"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot mp_slots[] = {
    {Py_mod_create, (void *)mp_create},
    {Py_mod_exec, (void *)mp_exec},
    {0, NULL},
};

static struct PyModuleDef mp_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_multiphase",
    .m_doc = "Py_mod_create + Py_mod_exec (test extension).",
    .m_size = 0,
    .m_methods = mp_methods,
    .m_slots = mp_slots,
};

PyMODINIT_FUNC
PyInit_cx_multiphase(void)
{
    return PyModuleDef_Init(&mp_module);
}
