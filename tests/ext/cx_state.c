/*
 * cx_state: multi-phase initialisation (PEP 489) with per-module state.
 *
 * - m_size > 0: each module instance owns a cx_state_t (counter, stored
 *   object, its own Error class).
 * - two Py_mod_exec slots, run in order; the second one records the order.
 * - a plain static C global counter (global_incr) that is shared by every
 *   module instance of the same image, unlike the per-module state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct {
    long counter;
    PyObject *stored; /* strong reference or NULL */
    PyObject *error;  /* cx_state.Error, strong reference */
} cx_state_t;

/* Shared by all module instances created from this image. */
static long global_counter = 0;
/* Initialised (non-zero) global, lives in .data. */
static long global_step = 1;

static cx_state_t *
get_state(PyObject *module)
{
    cx_state_t *st = (cx_state_t *)PyModule_GetState(module);
    if (st == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_SystemError, "cx_state: module state missing");
    }
    return st;
}

static PyObject *
cx_incr(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"n", NULL};
    long n = 1;
    cx_state_t *st;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|l:incr", kwlist, &n)) {
        return NULL;
    }
    st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    st->counter += n;
    return PyLong_FromLong(st->counter);
}

static PyObject *
cx_get(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    cx_state_t *st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    return PyLong_FromLong(st->counter);
}

static PyObject *
cx_store(PyObject *module, PyObject *obj)
{
    cx_state_t *st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    Py_INCREF(obj);
    Py_XSETREF(st->stored, obj);
    Py_RETURN_NONE;
}

static PyObject *
cx_fetch(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    cx_state_t *st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    if (st->stored == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(st->stored);
    return st->stored;
}

static PyObject *
cx_clear_stored(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    cx_state_t *st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    Py_CLEAR(st->stored);
    Py_RETURN_NONE;
}

static PyObject *
cx_global_incr(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    global_counter += global_step;
    return PyLong_FromLong(global_counter);
}

static PyObject *
cx_global_get(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyLong_FromLong(global_counter);
}

static PyObject *
cx_fail(PyObject *module, PyObject *args)
{
    const char *msg;
    cx_state_t *st;

    if (!PyArg_ParseTuple(args, "s:fail", &msg)) {
        return NULL;
    }
    st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    PyErr_SetString(st->error, msg);
    return NULL;
}

static PyObject *
cx_error_type(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    cx_state_t *st = get_state(module);
    if (st == NULL) {
        return NULL;
    }
    Py_INCREF(st->error);
    return st->error;
}

static PyObject *
cx_state_size(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyLong_FromSsize_t((Py_ssize_t)sizeof(cx_state_t));
}

static PyMethodDef cx_state_methods[] = {
    {"incr", (PyCFunction)(void (*)(void))cx_incr, METH_VARARGS | METH_KEYWORDS,
     "incr(n=1) -> new per-module counter value"},
    {"get", cx_get, METH_NOARGS, "get() -> per-module counter value"},
    {"store", cx_store, METH_O, "store(obj): keep a reference in module state"},
    {"fetch", cx_fetch, METH_NOARGS, "fetch() -> stored object or None"},
    {"clear_stored", cx_clear_stored, METH_NOARGS, "drop the stored object"},
    {"global_incr", cx_global_incr, METH_NOARGS,
     "global_incr() -> new value of a static C global shared by all instances"},
    {"global_get", cx_global_get, METH_NOARGS, "current static C global value"},
    {"fail", cx_fail, METH_VARARGS, "fail(msg): raise cx_state.Error(msg)"},
    {"error_type", cx_error_type, METH_NOARGS, "the Error class in module state"},
    {"state_size", cx_state_size, METH_NOARGS, "sizeof the module state struct"},
    {NULL, NULL, 0, NULL},
};

static int
cx_state_exec_first(PyObject *module)
{
    cx_state_t *st = get_state(module);
    if (st == NULL) {
        return -1;
    }
    st->counter = 0;
    st->stored = NULL;
    st->error = PyErr_NewExceptionWithDoc(
        "cx_state.Error", "Raised by cx_state.fail().", NULL, NULL);
    if (st->error == NULL) {
        return -1;
    }
    Py_INCREF(st->error);
    if (PyModule_AddObject(module, "Error", st->error) < 0) {
        Py_DECREF(st->error);
        return -1;
    }
    return 0;
}

static int
cx_state_exec_second(PyObject *module)
{
    PyObject *log;
    int rc;

    /* Must run after exec_first: the Error attribute exists already. */
    if (!PyObject_HasAttrString(module, "Error")) {
        PyErr_SetString(PyExc_RuntimeError, "exec slots ran out of order");
        return -1;
    }
    log = Py_BuildValue("[ss]", "exec_first", "exec_second");
    if (log == NULL) {
        return -1;
    }
    rc = PyModule_AddObject(module, "exec_log", log);
    if (rc < 0) {
        Py_DECREF(log);
    }
    return rc;
}

static int
cx_state_traverse(PyObject *module, visitproc visit, void *arg)
{
    cx_state_t *st = (cx_state_t *)PyModule_GetState(module);
    if (st != NULL) {
        Py_VISIT(st->stored);
        Py_VISIT(st->error);
    }
    return 0;
}

static int
cx_state_clear(PyObject *module)
{
    cx_state_t *st = (cx_state_t *)PyModule_GetState(module);
    if (st != NULL) {
        Py_CLEAR(st->stored);
        Py_CLEAR(st->error);
    }
    return 0;
}

static void
cx_state_free(void *module)
{
    (void)cx_state_clear((PyObject *)module);
}

static PyModuleDef_Slot cx_state_slots[] = {
    {Py_mod_exec, (void *)cx_state_exec_first},
    {Py_mod_exec, (void *)cx_state_exec_second},
    {0, NULL},
};

static struct PyModuleDef cx_state_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_state",
    .m_doc = "Per-module state with multi-phase init (test extension).",
    .m_size = sizeof(cx_state_t),
    .m_methods = cx_state_methods,
    .m_slots = cx_state_slots,
    .m_traverse = cx_state_traverse,
    .m_clear = cx_state_clear,
    .m_free = cx_state_free,
};

PyMODINIT_FUNC
PyInit_cx_state(void)
{
    return PyModuleDef_Init(&cx_state_module);
}
