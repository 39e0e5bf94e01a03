#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* scale(xs) -> [x * CXDEMO_K for x in xs] */
static PyObject *scale(PyObject *self, PyObject *seq) {
  (void)self;
  PyObject *fast = PySequence_Fast(seq, "scale() needs a sequence");
  if (!fast) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  PyObject *out = PyList_New(n);
  for (Py_ssize_t i = 0; out && i < n; i++) {
    long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
    if (v == -1 && PyErr_Occurred()) {
      Py_CLEAR(out);
      break;
    }
    PyList_SET_ITEM(out, i, PyLong_FromLong(v * CXDEMO_K));
  }
  Py_DECREF(fast);
  return out;
}

static PyMethodDef methods[] = {{"scale", scale, METH_O, "Multiply each item by K."}, {0}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cxdemo._speedups", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&def); }
