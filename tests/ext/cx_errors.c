/*
 * cx_errors: raising exceptions from C.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>

static PyObject *BaseError = NULL;     /* cx_errors.BaseError(Exception) */
static PyObject *SpecificError = NULL; /* cx_errors.SpecificError(BaseError) */
static PyObject *LookupFailed = NULL;  /* cx_errors.LookupFailed(BaseError, LookupError) */

/* Take the current exception as a normalised instance (new reference). */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static PyObject *
er_value_error(PyObject *self, PyObject *args)
{
    const char *what;
    int n;
    PyObject *obj;

    (void)self;
    if (!PyArg_ParseTuple(args, "siO:value_error", &what, &n, &obj)) {
        return NULL;
    }
    return PyErr_Format(PyExc_ValueError, "bad %s: %d (%R)", what, n, obj);
}

static PyObject *
er_key_error(PyObject *self, PyObject *key)
{
    PyObject *tup;

    (void)self;
    /* wrap in a 1-tuple so tuple keys are not unpacked into args */
    tup = PyTuple_Pack(1, key);
    if (tup == NULL) {
        return NULL;
    }
    PyErr_SetObject(PyExc_KeyError, tup);
    Py_DECREF(tup);
    return NULL;
}

static PyObject *
er_raise_custom(PyObject *self, PyObject *args)
{
    const char *msg;

    (void)self;
    if (!PyArg_ParseTuple(args, "s:raise_custom", &msg)) {
        return NULL;
    }
    PyErr_SetString(SpecificError, msg);
    return NULL;
}

static PyObject *
er_raise_lookup(PyObject *self, PyObject *key)
{
    (void)self;
    PyErr_Format(LookupFailed, "no entry for %R", key);
    return NULL;
}

static PyObject *
er_raise_base(PyObject *self, PyObject *args)
{
    /* raise_base(*args): BaseError(*args) */
    (void)self;
    PyErr_SetObject(BaseError, args);
    return NULL;
}

static PyObject *
er_raise_with_cause(PyObject *self, PyObject *args)
{
    const char *msg;
    PyObject *cause, *exc;

    (void)self;
    if (!PyArg_ParseTuple(args, "s:raise_with_cause", &msg)) {
        return NULL;
    }
    cause = PyObject_CallFunction(PyExc_RuntimeError, "s", "root cause");
    if (cause == NULL) {
        return NULL;
    }
    exc = PyObject_CallFunction(PyExc_ValueError, "s", msg);
    if (exc == NULL) {
        Py_DECREF(cause);
        return NULL;
    }
    PyException_SetCause(exc, cause); /* steals cause */
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
er_wrap_call(PyObject *self, PyObject *f)
{
    /* C equivalent of:
     *     try: return f()
     *     except Exception as e: raise SpecificError("wrapped") from e
     */
    PyObject *result, *value, *exc;

    (void)self;
    result = PyObject_CallNoArgs(f);
    if (result != NULL) {
        return result;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    value = take_exception();
    if (value == NULL) {
        return NULL;
    }

    exc = PyObject_CallFunction(SpecificError, "s", "wrapped");
    if (exc == NULL) {
        Py_XDECREF(value);
        return NULL;
    }
    PyException_SetCause(exc, value); /* steals value */
    PyErr_SetObject(SpecificError, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *
er_return_null_no_error(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    PyErr_Clear();
    return NULL; /* the interpreter must turn this into SystemError */
}

static PyObject *
er_return_value_with_error(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    PyErr_SetString(PyExc_ValueError, "left set");
    Py_RETURN_NONE; /* the interpreter must turn this into SystemError */
}

static PyObject *
er_raise_errno(PyObject *self, PyObject *args)
{
    int code;
    const char *filename = NULL;

    (void)self;
    if (!PyArg_ParseTuple(args, "i|s:raise_errno", &code, &filename)) {
        return NULL;
    }
    errno = code;
    if (filename != NULL) {
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, filename);
    }
    return PyErr_SetFromErrno(PyExc_OSError);
}

static PyObject *
er_warn(PyObject *self, PyObject *args)
{
    const char *msg;

    (void)self;
    if (!PyArg_ParseTuple(args, "s:warn", &msg)) {
        return NULL;
    }
    if (PyErr_WarnEx(PyExc_UserWarning, msg, 1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
er_catch_and_clear(PyObject *self, PyObject *f)
{
    /* call f(); swallow any Exception and return its type name, else the result */
    PyObject *result, *value, *name;

    (void)self;
    result = PyObject_CallNoArgs(f);
    if (result != NULL) {
        return result;
    }
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return NULL;
    }
    value = take_exception();
    if (value == NULL) {
        return NULL;
    }
    name = PyUnicode_FromString(Py_TYPE(value)->tp_name);
    Py_DECREF(value);
    return name;
}

static PyMethodDef errors_methods[] = {
    {"value_error", er_value_error, METH_VARARGS,
     "value_error(what, n, obj): ValueError('bad %s: %d (%R)')"},
    {"key_error", er_key_error, METH_O, "key_error(key): KeyError(key)"},
    {"raise_custom", er_raise_custom, METH_VARARGS, "raise SpecificError(msg)"},
    {"raise_lookup", er_raise_lookup, METH_O, "raise LookupFailed"},
    {"raise_base", er_raise_base, METH_VARARGS, "raise BaseError(*args)"},
    {"raise_with_cause", er_raise_with_cause, METH_VARARGS,
     "raise ValueError(msg) from RuntimeError('root cause')"},
    {"wrap_call", er_wrap_call, METH_O,
     "f() re-raised as SpecificError('wrapped') from the original"},
    {"return_null_no_error", er_return_null_no_error, METH_NOARGS,
     "returns NULL without an exception set"},
    {"return_value_with_error", er_return_value_with_error, METH_NOARGS,
     "returns a value with an exception set"},
    {"raise_errno", er_raise_errno, METH_VARARGS,
     "raise_errno(code, filename=None): OSError from errno"},
    {"warn", er_warn, METH_VARARGS, "warn(msg): UserWarning"},
    {"catch_and_clear", er_catch_and_clear, METH_O,
     "call f(); return type name of a raised Exception instead"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef errors_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_errors",
    .m_doc = "Raising exceptions from C (test extension).",
    .m_size = -1,
    .m_methods = errors_methods,
};

PyMODINIT_FUNC
PyInit_cx_errors(void)
{
    PyObject *m, *bases;

    m = PyModule_Create(&errors_module);
    if (m == NULL) {
        return NULL;
    }
    BaseError = PyErr_NewExceptionWithDoc(
        "cx_errors.BaseError", "Root of cx_errors exceptions.", NULL, NULL);
    if (BaseError == NULL) {
        goto error;
    }
    SpecificError = PyErr_NewException("cx_errors.SpecificError", BaseError, NULL);
    if (SpecificError == NULL) {
        goto error;
    }
    bases = PyTuple_Pack(2, BaseError, PyExc_LookupError);
    if (bases == NULL) {
        goto error;
    }
    LookupFailed = PyErr_NewException("cx_errors.LookupFailed", bases, NULL);
    Py_DECREF(bases);
    if (LookupFailed == NULL) {
        goto error;
    }
    Py_INCREF(BaseError);
    if (PyModule_AddObject(m, "BaseError", BaseError) < 0) {
        Py_DECREF(BaseError);
        goto error;
    }
    Py_INCREF(SpecificError);
    if (PyModule_AddObject(m, "SpecificError", SpecificError) < 0) {
        Py_DECREF(SpecificError);
        goto error;
    }
    Py_INCREF(LookupFailed);
    if (PyModule_AddObject(m, "LookupFailed", LookupFailed) < 0) {
        Py_DECREF(LookupFailed);
        goto error;
    }
    return m;

error:
    Py_CLEAR(BaseError);
    Py_CLEAR(SpecificError);
    Py_CLEAR(LookupFailed);
    Py_DECREF(m);
    return NULL;
}
