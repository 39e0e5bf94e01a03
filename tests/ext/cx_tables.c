/*
 * cx_tables: static data that points at other data and at code.
 *
 * Every table here needs load-time relocations in a position-independent
 * image (and absolute relocations in a non-PIC one): pointers to string
 * literals, pointers to functions, pointers into the middle of arrays,
 * a self-referencing pointer, and pointers to data objects exported by the
 * Python interpreter (type objects and exception pointers).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Dispatch table: name -> function pointer                            */

static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }
static long op_max(long a, long b) { return a > b ? a : b; }
static long op_min(long a, long b) { return a < b ? a : b; }
static long op_xor(long a, long b) { return a ^ b; }
static long op_first(long a, long b) { (void)b; return a; }

struct op {
    const char *name;
    long (*fn)(long, long);
};

static const struct op ops[] = {
    {"add", op_add},
    {"sub", op_sub},
    {"mul", op_mul},
    {"max", op_max},
    {"min", op_min},
    {"xor", op_xor},
    {"first", op_first},
};
#define N_OPS ((Py_ssize_t)(sizeof(ops) / sizeof(ops[0])))

static const struct op *
find_op(const char *name)
{
    Py_ssize_t i;
    for (i = 0; i < N_OPS; i++) {
        if (strcmp(ops[i].name, name) == 0) {
            return &ops[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Array of string pointers, and pointers into its middle              */

static const char *const names[] = {"alpha", "beta", "gamma", "delta", "epsilon"};
#define N_NAMES ((Py_ssize_t)(sizeof(names) / sizeof(names[0])))

/* pointer with an addend: &names[2] */
static const char *const *const names_mid = &names[2];
/* pointer into the middle of a string literal: "world" */
static const char *const hello_tail = "hello world" + 6;
/* a pointer that points at itself */
static const void *const self_ref = &self_ref;

/* ------------------------------------------------------------------ */
/* Nested static structs: a linked list of tables                      */

static const long primes[] = {2, 3, 5, 7, 11, 13};
static const long squares[] = {1, 4, 9, 16, 25};
static const long single[] = {1000};

struct chunk {
    const char *label;
    const long *data;
    size_t len;
    const struct chunk *next;
};

static const struct chunk chunk_single = {"single", single, 1, NULL};
static const struct chunk chunk_squares = {"squares", squares, 5, &chunk_single};
static const struct chunk chunk_primes = {"primes", primes, 6, &chunk_squares};

/* a struct holding a pointer to another static array + a function */
static const struct {
    const struct chunk *head;
    const struct op *table;
    Py_ssize_t table_len;
    long (*fallback)(long, long);
} registry = {&chunk_primes, ops, N_OPS, op_first};

/* ------------------------------------------------------------------ */
/* Mutable table of function pointers, modified at run time            */

static long (*mutable_ops[3])(long, long) = {op_add, op_mul, op_sub};
#define N_MUTABLE ((Py_ssize_t)(sizeof(mutable_ops) / sizeof(mutable_ops[0])))

/* ------------------------------------------------------------------ */
/* Addresses of Python C-API data in static initialisers               */

static PyTypeObject *const type_table[] = {
    &PyLong_Type,
    &PyFloat_Type,
    &PyUnicode_Type,
    &PyBytes_Type,
    &PyList_Type,
    &PyDict_Type,
    &PyTuple_Type,
};
#define N_TYPES ((Py_ssize_t)(sizeof(type_table) / sizeof(type_table[0])))

static PyObject **const excs[] = {
    &PyExc_ValueError,
    &PyExc_KeyError,
    &PyExc_TypeError,
    &PyExc_RuntimeError,
    &PyExc_ZeroDivisionError,
    &PyExc_OverflowError,
};
#define N_EXCS ((Py_ssize_t)(sizeof(excs) / sizeof(excs[0])))

static PyObject *const none_ptr = Py_None;

/* ------------------------------------------------------------------ */

static PyObject *
tb_apply(PyObject *self, PyObject *args)
{
    const char *name;
    long a, b;
    const struct op *op;

    (void)self;
    if (!PyArg_ParseTuple(args, "sll:apply", &name, &a, &b)) {
        return NULL;
    }
    op = find_op(name);
    if (op == NULL) {
        PyErr_Format(PyExc_KeyError, "unknown op %s", name);
        return NULL;
    }
    return PyLong_FromLong(op->fn(a, b));
}

static PyObject *
tb_op_names(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list;
    Py_ssize_t i;

    (void)self;
    list = PyList_New(registry.table_len);
    if (list == NULL) {
        return NULL;
    }
    for (i = 0; i < registry.table_len; i++) {
        PyObject *s = PyUnicode_FromString(registry.table[i].name);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

static PyObject *
tb_names(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *list;
    Py_ssize_t i;

    (void)self;
    list = PyList_New(N_NAMES);
    if (list == NULL) {
        return NULL;
    }
    for (i = 0; i < N_NAMES; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

static PyObject *
tb_names_from_middle(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* walk from names_mid to the end: ["gamma", "delta", "epsilon"] */
    PyObject *list = PyList_New(0);
    const char *const *p;

    (void)self;
    if (list == NULL) {
        return NULL;
    }
    for (p = names_mid; p < names + N_NAMES; p++) {
        PyObject *s = PyUnicode_FromString(*p);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

static PyObject *
tb_hello_tail(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyUnicode_FromString(hello_tail);
}

static PyObject *
tb_self_ref_ok(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyBool_FromLong(self_ref == (const void *)&self_ref);
}

static PyObject *
tb_nested_sum(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    const struct chunk *c;
    long total = 0;
    size_t i;

    (void)self;
    for (c = registry.head; c != NULL; c = c->next) {
        for (i = 0; i < c->len; i++) {
            total += c->data[i];
        }
    }
    return PyLong_FromLong(total);
}

static PyObject *
tb_nested_labels(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    const struct chunk *c;
    PyObject *list = PyList_New(0);

    (void)self;
    if (list == NULL) {
        return NULL;
    }
    for (c = registry.head; c != NULL; c = c->next) {
        PyObject *item = Py_BuildValue("(sn)", c->label, (Py_ssize_t)c->len);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

static PyObject *
tb_fallback(PyObject *self, PyObject *args)
{
    long a, b;

    (void)self;
    if (!PyArg_ParseTuple(args, "ll:fallback", &a, &b)) {
        return NULL;
    }
    return PyLong_FromLong(registry.fallback(a, b));
}

static PyObject *
tb_call_mutable(PyObject *self, PyObject *args)
{
    Py_ssize_t i;
    long a, b;

    (void)self;
    if (!PyArg_ParseTuple(args, "nll:call_mutable", &i, &a, &b)) {
        return NULL;
    }
    if (i < 0 || i >= N_MUTABLE) {
        PyErr_SetString(PyExc_IndexError, "mutable op index out of range");
        return NULL;
    }
    return PyLong_FromLong(mutable_ops[i](a, b));
}

static PyObject *
tb_swap_ops(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    long (*tmp)(long, long);

    (void)self;
    tmp = mutable_ops[0];
    mutable_ops[0] = mutable_ops[1];
    mutable_ops[1] = tmp;
    Py_RETURN_NONE;
}

static PyObject *
tb_set_mutable(PyObject *self, PyObject *args)
{
    Py_ssize_t i;
    const char *name;
    const struct op *op;

    (void)self;
    if (!PyArg_ParseTuple(args, "ns:set_mutable", &i, &name)) {
        return NULL;
    }
    if (i < 0 || i >= N_MUTABLE) {
        PyErr_SetString(PyExc_IndexError, "mutable op index out of range");
        return NULL;
    }
    op = find_op(name);
    if (op == NULL) {
        PyErr_Format(PyExc_KeyError, "unknown op %s", name);
        return NULL;
    }
    mutable_ops[i] = op->fn;
    Py_RETURN_NONE;
}

static PyObject *
tb_mutable_names(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* map each mutable slot back to the name of the op it points at */
    PyObject *list;
    Py_ssize_t i, j;

    (void)self;
    list = PyList_New(N_MUTABLE);
    if (list == NULL) {
        return NULL;
    }
    for (i = 0; i < N_MUTABLE; i++) {
        const char *found = "?";
        PyObject *s;
        for (j = 0; j < N_OPS; j++) {
            if (ops[j].fn == mutable_ops[i]) {
                found = ops[j].name;
                break;
            }
        }
        s = PyUnicode_FromString(found);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

static PyObject *
tb_type_index(PyObject *self, PyObject *obj)
{
    Py_ssize_t i;

    (void)self;
    for (i = 0; i < N_TYPES; i++) {
        if (Py_TYPE(obj) == type_table[i]) {
            return PyLong_FromSsize_t(i);
        }
    }
    return PyLong_FromLong(-1);
}

static PyObject *
tb_types(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *tuple;
    Py_ssize_t i;

    (void)self;
    tuple = PyTuple_New(N_TYPES);
    if (tuple == NULL) {
        return NULL;
    }
    for (i = 0; i < N_TYPES; i++) {
        Py_INCREF(type_table[i]);
        PyTuple_SET_ITEM(tuple, i, (PyObject *)type_table[i]);
    }
    return tuple;
}

static PyObject *
tb_raise_kind(PyObject *self, PyObject *args)
{
    Py_ssize_t i;

    (void)self;
    if (!PyArg_ParseTuple(args, "n:raise_kind", &i)) {
        return NULL;
    }
    if (i < 0 || i >= N_EXCS) {
        PyErr_Format(PyExc_IndexError, "no exception kind %zd", i);
        return NULL;
    }
    PyErr_Format(*excs[i], "kind %zd", i);
    return NULL;
}

static PyObject *
tb_n_kinds(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromSsize_t(N_EXCS);
}

static PyObject *
tb_is_none(PyObject *self, PyObject *obj)
{
    (void)self;
    return PyBool_FromLong(obj == none_ptr);
}

static PyMethodDef tables_methods[] = {
    {"apply", tb_apply, METH_VARARGS, "apply(name, a, b) via the static ops table"},
    {"op_names", tb_op_names, METH_NOARGS, "names in the ops table"},
    {"names", tb_names, METH_NOARGS, "the static names array"},
    {"names_from_middle", tb_names_from_middle, METH_NOARGS,
     "walk names[] starting from a pointer to names[2]"},
    {"hello_tail", tb_hello_tail, METH_NOARGS, "string from a pointer into a literal"},
    {"self_ref_ok", tb_self_ref_ok, METH_NOARGS, "self-referencing pointer intact"},
    {"nested_sum", tb_nested_sum, METH_NOARGS, "sum of all linked static chunks"},
    {"nested_labels", tb_nested_labels, METH_NOARGS, "(label, len) of each chunk"},
    {"fallback", tb_fallback, METH_VARARGS, "call the function pointer in registry"},
    {"call_mutable", tb_call_mutable, METH_VARARGS,
     "call_mutable(i, a, b) via the mutable function table"},
    {"swap_ops", tb_swap_ops, METH_NOARGS, "swap mutable slots 0 and 1"},
    {"set_mutable", tb_set_mutable, METH_VARARGS, "set_mutable(i, opname)"},
    {"mutable_names", tb_mutable_names, METH_NOARGS, "op names in mutable slots"},
    {"type_index", tb_type_index, METH_O, "index of type(obj) in static table, -1"},
    {"types", tb_types, METH_NOARGS, "the static type table as a tuple"},
    {"raise_kind", tb_raise_kind, METH_VARARGS, "raise the i-th exception kind"},
    {"n_kinds", tb_n_kinds, METH_NOARGS, "number of exception kinds"},
    {"is_none", tb_is_none, METH_O, "obj is the statically captured Py_None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tables_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_tables",
    .m_doc = "Static tables of data and function pointers (test extension).",
    .m_size = -1,
    .m_methods = tables_methods,
};

PyMODINIT_FUNC
PyInit_cx_tables(void)
{
    return PyModule_Create(&tables_module);
}
