/*
 * cx_callback: C calling Python callables and Python calling back into C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* current / maximum C-level nesting of pingpong() */
static int pp_depth = 0;
static int pp_max_depth = 0;
/* number of callback invocations made by map()/reduce() */
static long n_callbacks = 0;

static PyObject *
cb_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *f, *rest, *result;

    (void)self;
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "call() needs a callable");
        return NULL;
    }
    f = PyTuple_GET_ITEM(args, 0);
    if (!PyCallable_Check(f)) {
        PyErr_Format(PyExc_TypeError, "call(): %R is not callable", f);
        return NULL;
    }
    rest = PyTuple_GetSlice(args, 1, n);
    if (rest == NULL) {
        return NULL;
    }
    result = PyObject_Call(f, rest, kwargs);
    Py_DECREF(rest);
    return result;
}

static PyObject *
cb_map(PyObject *self, PyObject *args)
{
    PyObject *f, *iterable, *it, *item, *out;

    (void)self;
    if (!PyArg_ParseTuple(args, "OO:map", &f, &iterable)) {
        return NULL;
    }
    it = PyObject_GetIter(iterable);
    if (it == NULL) {
        return NULL;
    }
    out = PyList_New(0);
    if (out == NULL) {
        Py_DECREF(it);
        return NULL;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *r;
        n_callbacks++;
        r = PyObject_CallOneArg(f, item);
        Py_DECREF(item);
        if (r == NULL || PyList_Append(out, r) < 0) {
            Py_XDECREF(r);
            goto error;
        }
        Py_DECREF(r);
    }
    if (PyErr_Occurred()) {
        goto error;
    }
    Py_DECREF(it);
    return out;

error:
    Py_DECREF(it);
    Py_DECREF(out);
    return NULL;
}

static PyObject *
cb_reduce(PyObject *self, PyObject *args)
{
    PyObject *f, *iterable, *init, *it, *item, *acc;

    (void)self;
    if (!PyArg_ParseTuple(args, "OOO:reduce", &f, &iterable, &init)) {
        return NULL;
    }
    it = PyObject_GetIter(iterable);
    if (it == NULL) {
        return NULL;
    }
    Py_INCREF(init);
    acc = init;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *r;
        n_callbacks++;
        r = PyObject_CallFunctionObjArgs(f, acc, item, NULL);
        Py_DECREF(item);
        Py_DECREF(acc);
        if (r == NULL) {
            Py_DECREF(it);
            return NULL;
        }
        acc = r;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        Py_DECREF(acc);
        return NULL;
    }
    return acc;
}

static PyObject *
cb_pingpong(PyObject *self, PyObject *args)
{
    PyObject *f, *result;
    long n;

    (void)self;
    if (!PyArg_ParseTuple(args, "Ol:pingpong", &f, &n)) {
        return NULL;
    }
    if (Py_EnterRecursiveCall(" in cx_callback.pingpong")) {
        return NULL;
    }
    pp_depth++;
    if (pp_depth > pp_max_depth) {
        pp_max_depth = pp_depth;
    }
    result = PyObject_CallFunction(f, "l", n);
    pp_depth--;
    Py_LeaveRecursiveCall();
    return result;
}

static PyObject *
cb_depth(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(pp_depth);
}

static PyObject *
cb_max_depth(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(pp_max_depth);
}

static PyObject *
cb_reset(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    pp_max_depth = 0;
    n_callbacks = 0;
    Py_RETURN_NONE;
}

static PyObject *
cb_n_callbacks(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(n_callbacks);
}

static PyObject *
cb_call_method(PyObject *self, PyObject *args)
{
    /* call_method(obj, name, *args) -> obj.name(*args) */
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *obj, *name, *meth, *rest, *result;

    (void)self;
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "call_method(obj, name, *args)");
        return NULL;
    }
    obj = PyTuple_GET_ITEM(args, 0);
    name = PyTuple_GET_ITEM(args, 1);
    meth = PyObject_GetAttr(obj, name);
    if (meth == NULL) {
        return NULL;
    }
    rest = PyTuple_GetSlice(args, 2, n);
    if (rest == NULL) {
        Py_DECREF(meth);
        return NULL;
    }
    result = PyObject_Call(meth, rest, NULL);
    Py_DECREF(rest);
    Py_DECREF(meth);
    return result;
}

static PyMethodDef callback_methods[] = {
    {"call", (PyCFunction)(void (*)(void))cb_call, METH_VARARGS | METH_KEYWORDS,
     "call(f, *args, **kwargs) -> f(*args, **kwargs)"},
    {"map", cb_map, METH_VARARGS, "map(f, iterable) -> [f(x) for x in iterable]"},
    {"reduce", cb_reduce, METH_VARARGS, "reduce(f, iterable, init)"},
    {"pingpong", cb_pingpong, METH_VARARGS,
     "pingpong(f, n) -> f(n); f may call pingpong again"},
    {"depth", cb_depth, METH_NOARGS, "current pingpong nesting depth"},
    {"max_depth", cb_max_depth, METH_NOARGS, "maximum pingpong nesting since reset"},
    {"reset", cb_reset, METH_NOARGS, "reset max_depth and n_callbacks"},
    {"n_callbacks", cb_n_callbacks, METH_NOARGS, "callbacks made by map/reduce"},
    {"call_method", cb_call_method, METH_VARARGS, "call_method(obj, name, *args)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef callback_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_callback",
    .m_doc = "C <-> Python callbacks (test extension).",
    .m_size = -1,
    .m_methods = callback_methods,
};

PyMODINIT_FUNC
PyInit_cx_callback(void)
{
    return PyModule_Create(&callback_module);
}
