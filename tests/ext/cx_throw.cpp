// Exceptions across images: thrown here, caught in cx_catch (tests/test_ext_suite.py).
// Each image links its own libstdc++; both share the interpreter's unwinder.
#include <Python.h>
#include <stdexcept>
static PyObject *throw_std(PyObject *, PyObject *) { throw std::runtime_error("boom from cx_throw"); }
static PyObject *throw_int(PyObject *, PyObject *) { throw 42; }
static PyMethodDef m[] = {{"throw_std", throw_std, METH_NOARGS, 0}, {"throw_int", throw_int, METH_NOARGS, 0}, {0}};
static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "cx_throw", "C++ throw test extension", -1, m};
extern "C" PyMODINIT_FUNC PyInit_cx_throw(void) { return PyModule_Create(&d); }
