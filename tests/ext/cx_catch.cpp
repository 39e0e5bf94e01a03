// Catches C++ exceptions thrown by another image (cx_throw) through Python frames.
#include <Python.h>
#include <stdexcept>
#include <string>
static PyObject *call_and_catch(PyObject *, PyObject *f) {
  try { PyObject *r = PyObject_CallNoArgs(f); return r; }
  catch (const std::exception &e) { return PyUnicode_FromString((std::string("caught std: ") + e.what()).c_str()); }
  catch (int v) { return PyUnicode_FromFormat("caught int %d", v); }
  catch (...) { return PyUnicode_FromString("caught unknown"); }
}
static PyMethodDef m[] = {{"call_and_catch", call_and_catch, METH_O, 0}, {0}};
static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "cx_catch", "C++ catch test extension", -1, m};
extern "C" PyMODINIT_FUNC PyInit_cx_catch(void) { return PyModule_Create(&d); }
