/* _contextvars for embedded interpreters whose libpython lacks it (Debian
   builds it as a shared module).  The types live in libpython itself; this
   module only names them, so contextvars, decimal and asyncio work. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *copy_context(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyContext_CopyCurrent();
}

static int exec_module(PyObject *m) {
  if (PyModule_AddObjectRef(m, "Context", (PyObject *)&PyContext_Type) < 0) return -1;
  if (PyModule_AddObjectRef(m, "ContextVar", (PyObject *)&PyContextVar_Type) < 0) return -1;
  if (PyModule_AddObjectRef(m, "Token", (PyObject *)&PyContextToken_Type) < 0) return -1;
  return 0;
}

static PyMethodDef methods[] = {
    {"copy_context", copy_context, METH_NOARGS, "Return a copy of the current Context."},
    {NULL, NULL, 0, NULL},
};
static PyModuleDef_Slot slots[] = {{Py_mod_exec, exec_module}, {0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_contextvars",
                                 "Context variables (cosmoext embedded build)", 0, methods,
                                 slots, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__cosmoext_contextvars(void) { return PyModuleDef_Init(&def); }
