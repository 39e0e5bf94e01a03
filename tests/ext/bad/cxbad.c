/* cxbad: a tiny module for tests/test_bad_input.py.  Its static data holds
   pointers (to strings, to a function and to another static), so the image
   has abs64 fixups against its own base as well as imports of the host. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const char *const greetings[] = {"hello", "bonjour", "hallo"};
static long counter = 40;
static long *const counter_ref = &counter;

static long twice(long x) { return 2 * x; }
static long (*const op)(long) = twice;

static PyObject *cb_add(PyObject *self, PyObject *args) {
  long a, b;
  (void)self;
  if (!PyArg_ParseTuple(args, "ll:add", &a, &b)) return NULL;
  return PyLong_FromLong(a + b);
}

static PyObject *cb_greet(PyObject *self, PyObject *arg) {
  (void)self;
  long i = PyLong_AsLong(arg);
  if (i == -1 && PyErr_Occurred()) return NULL;
  if (i < 0 || i >= (long)(sizeof greetings / sizeof greetings[0]))
    return PyErr_Format(PyExc_IndexError, "no greeting %ld", i);
  return PyUnicode_FromString(greetings[i]);
}

static PyObject *cb_bump(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  *counter_ref += 1;
  return PyLong_FromLong(op(*counter_ref));
}

static PyMethodDef methods[] = {
    {"add", cb_add, METH_VARARGS, "add(a, b) -> a + b"},
    {"greet", cb_greet, METH_O, "greet(i) -> a greeting"},
    {"bump", cb_bump, METH_NOARGS, "increment the counter; return twice its value"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT, "cxbad", "bad-input test module", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_cxbad(void) {
  PyObject *m = PyModule_Create(&def);
  if (m && PyModule_AddIntConstant(m, "MAGIC", 4242) < 0) Py_CLEAR(m);
  return m;
}
