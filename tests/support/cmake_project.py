"""A small CMake project using cosmoext's CMake package (C, C++, a static
library, a non-PIC module), and the check that imports what it builds."""

from __future__ import annotations

from pathlib import Path

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.18)
project(tiny LANGUAGES C CXX)
find_package(cosmoext 0.1 CONFIG REQUIRED)

add_library(helper STATIC helper.c)
cosmoext_apply_flags(helper)

cosmoext_add_module(tinyc tinyc.c LIBRARIES helper)
target_compile_definitions(tinyc PRIVATE TINY_MAGIC=42)
cosmoext_add_module(tinycxx tinycxx.cpp)
set_target_properties(tinycxx PROPERTIES CXX_STANDARD 17 CXX_EXTENSIONS OFF)
cosmoext_add_module(tinynopic NO_PIC tinynopic.c)

cosmoext_install_module(tinyc DESTINATION pkg)
cosmoext_install_module(tinycxx DESTINATION pkg)
"""

HELPER_C = "int helper_value(int x) { return x * 3 + %d; }\n"

TINYC_C = """\
#include <Python.h>
int helper_value(int x);
static int counter;
static PyObject *magic(PyObject *self, PyObject *noargs) { return PyLong_FromLong(TINY_MAGIC); }
static PyObject *helper(PyObject *self, PyObject *arg)
{
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    counter++;
    return PyLong_FromLong(helper_value((int)v));
}
static PyObject *count(PyObject *self, PyObject *noargs) { return PyLong_FromLong(counter); }
/* 128-bit division: a call to libgcc's __udivti3, which `cosmoext link` pulls in. */
static PyObject *div128(PyObject *self, PyObject *arg)
{
    unsigned long long d = PyLong_AsUnsignedLongLong(arg);
    if (d == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    unsigned __int128 n = ((unsigned __int128)1 << 100) + 12345;
    return PyLong_FromUnsignedLongLong((unsigned long long)(n / d));
}
static PyMethodDef methods[] = {
    {"magic", magic, METH_NOARGS, NULL},
    {"div128", div128, METH_O, NULL},
    {"helper", helper, METH_O, NULL},
    {"count", count, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "tinyc", NULL, -1, methods};
PyMODINIT_FUNC PyInit_tinyc(void) { return PyModule_Create(&def); }
"""

TINYCXX_CPP = """\
#include <Python.h>
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>
namespace {
const std::string g_hello = std::string("hello from ") + "C++";  // static constructor
int checked(int v)
{
    if (v < 0)
        throw std::out_of_range("negative: " + std::to_string(v));
    return v;
}
PyObject *sorted_sum(PyObject *, PyObject *arg)
{
    std::vector<long> v;
    PyObject *it = PyObject_GetIter(arg), *x;
    if (!it)
        return nullptr;
    while ((x = PyIter_Next(it))) {
        v.push_back(PyLong_AsLong(x));
        Py_DECREF(x);
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return nullptr;
    std::sort(v.begin(), v.end());
    std::string out;
    try {
        for (long i : v)
            out += std::to_string(checked(static_cast<int>(i))) + ",";
    } catch (const std::out_of_range &e) {
        PyErr_SetString(PyExc_ValueError, e.what());
        return nullptr;
    }
    return PyUnicode_FromString(out.c_str());
}
PyObject *hello(PyObject *, PyObject *) { return PyUnicode_FromString(g_hello.c_str()); }
PyMethodDef methods[] = {
    {"sorted_sum", sorted_sum, METH_O, nullptr},
    {"hello", hello, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};
PyModuleDef def = {PyModuleDef_HEAD_INIT, "tinycxx", nullptr, -1, methods};
}  // namespace
PyMODINIT_FUNC PyInit_tinycxx(void) { return PyModule_Create(&def); }
"""

# Non-PIC, and only calls into the host (no 32-bit references to host data),
# so an ordinary dynamic CPython can still place it (in the low 4 GiB).
TINYNOPIC_C = """\
#include <Python.h>
static long table[4] = {1, 10, 100, 1000};
static PyObject *pick(PyObject *self, PyObject *arg)
{
    long i = PyLong_AsLong(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromLong(table[i & 3]);
}
static PyMethodDef methods[] = {{"pick", pick, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "tinynopic", NULL, -1, methods};
PyMODINIT_FUNC PyInit_tinynopic(void) { return PyModule_Create(&def); }
"""

CHECK_IMPORT = """\
import tinyc, tinycxx, tinynopic
for m in (tinyc, tinycxx, tinynopic):
    assert m.__file__.endswith(".cosmoext"), m.__file__
assert tinyc.magic() == 42, tinyc.magic()
assert tinyc.helper(5) == 15 + HELPER_BIAS, tinyc.helper(5)
assert tinyc.count() == 1
assert tinyc.div128(3 << 40) == ((1 << 100) + 12345) // (3 << 40)
assert tinycxx.hello() == "hello from C++", tinycxx.hello()
assert tinycxx.sorted_sum([3, 1, 2]) == "1,2,3,", tinycxx.sorted_sum([3, 1, 2])
try:
    tinycxx.sorted_sum([1, -4])
except ValueError as e:
    assert str(e) == "negative: -4", e
else:
    raise AssertionError("no ValueError from the C++ exception")
assert [tinynopic.pick(i) for i in range(5)] == [1, 10, 100, 1000, 1]
print("ok")
"""


def write_project(src: Path, bias: int = 7) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for name, text in {"CMakeLists.txt": CMAKELISTS, "helper.c": HELPER_C % bias,
                       "tinyc.c": TINYC_C, "tinycxx.cpp": TINYCXX_CPP,
                       "tinynopic.c": TINYNOPIC_C}.items():
        (src / name).write_text(text)
