#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

// unique_sorted(words) -> sorted list of distinct strings (std::set + std::sort)
static PyObject *unique_sorted(PyObject *, PyObject *seq) {
  try {
    PyObject *fast = PySequence_Fast(seq, "unique_sorted() needs a sequence");
    if (!fast) return nullptr;
    std::set<std::string> seen;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
      const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
      if (!s) { Py_DECREF(fast); return nullptr; }
      seen.insert(s);
    }
    Py_DECREF(fast);
    std::vector<std::string> v(seen.begin(), seen.end());
    std::sort(v.begin(), v.end());
    if (v.size() > 100000) throw std::length_error("too many words");
    PyObject *out = PyList_New(0);
    for (const auto &s : v) {
      PyObject *u = PyUnicode_FromStringAndSize(s.data(), (Py_ssize_t)s.size());
      if (!u || PyList_Append(out, u) < 0) { Py_XDECREF(u); Py_DECREF(out); return nullptr; }
      Py_DECREF(u);
    }
    return out;
  } catch (const std::exception &e) {
    PyErr_SetString(PyExc_ValueError, e.what());
    return nullptr;
  }
}

static PyMethodDef methods[] = {{"unique_sorted", unique_sorted, METH_O, "Distinct, sorted."},
                                {nullptr, nullptr, 0, nullptr}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cxdemo._sorted", nullptr, -1, methods};
extern "C" PyMODINIT_FUNC PyInit__sorted(void) { return PyModule_Create(&def); }
