/* cxbad: a tiny module for tests/test_bad_input.py.  Its static data holds
   pointers (to strings, to a function and to another static), so the image
   has abs64 fixups against its own base as well as imports of the host.

   Variants (build-ext -D...):
     CXBAD_MISSING=1   also calls cx_no_such_function, which no interpreter exports
     CXBAD_MISSING=2   ... and cx_also_missing
     CXBAD_NO_PYINIT   defines no PyInit_ function at all */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const char *const greetings[] = {"hello", "bonjour", "hallo"};
static long counter = 40;
static long *const counter_ref = &counter;

static long twice(long x) { return 2 * x; }
static long (*const op)(long) = twice;

#if defined(CXBAD_MISSING) && CXBAD_MISSING >= 1
extern int cx_no_such_function(void);
#define MISSING_1() cx_no_such_function()
#else
#define MISSING_1() 0
#endif
#if defined(CXBAD_MISSING) && CXBAD_MISSING >= 2
extern int cx_also_missing(int);
#define MISSING_2() cx_also_missing(1)
#else
#define MISSING_2() 0
#endif

static PyObject *cb_add(PyObject *self, PyObject *args) {
  long a, b;
  (void)self;
  if (!PyArg_ParseTuple(args, "ll:add", &a, &b)) return NULL;
  return PyLong_FromLong(a + b + MISSING_1() + MISSING_2());
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

#ifndef CXBAD_NO_PYINIT
PyMODINIT_FUNC PyInit_cxbad(void) {
  PyObject *m = PyModule_Create(&def);
  if (m && PyModule_AddIntConstant(m, "MAGIC", 4242) < 0) Py_CLEAR(m);
  return m;
}
#else
PyObject *cxbad_make(void) { return PyModule_Create(&def); }
#endif
