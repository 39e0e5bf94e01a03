/* cosmoext._runtime.closure(callable, signature): a closure from the pool
   (cxclosure.c) that calls a Python callable.  Three handlers serve every
   signature, as register-passed arguments land in the same registers
   whatever the prototype (docs/runtime.md). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "cxclosure.h"
#include "cxpyclosure.h"

#define MAX_INT_ARGS 6
#define MAX_FP_ARGS 8
#define MAX_ARGS (MAX_INT_ARGS + MAX_FP_ARGS)

typedef struct {
  PyObject_HEAD
  void *fn;           /* the closure; NULL once freed */
  PyObject *callable; /* kept alive while the closure exists */
  PyObject *signature;
  char ret;
  char args[MAX_ARGS + 1];
  int nargs;
} CxClosure;

typedef uint64_t W;

static int is_int_code(char c) { return c && strchr("bBhHiIlLqQznp", c) != NULL; }
static int is_fp_code(char c) { return c == 'f' || c == 'd'; }

static PyObject *arg_to_py(char code, W w, double d) {
  switch (code) {
    case 'b': return PyLong_FromLong((int8_t)w);
    case 'B': return PyLong_FromLong((uint8_t)w);
    case 'h': return PyLong_FromLong((int16_t)w);
    case 'H': return PyLong_FromLong((uint16_t)w);
    case 'i': return PyLong_FromLong((int32_t)w);
    case 'I': return PyLong_FromUnsignedLong((uint32_t)w);
    case 'l': case 'q': case 'n': return PyLong_FromLongLong((long long)(int64_t)w);
    case 'L': case 'Q': case 'z': return PyLong_FromUnsignedLongLong((unsigned long long)w);
    case 'p': return PyLong_FromVoidPtr((void *)(uintptr_t)w);
    case 'd': return PyFloat_FromDouble(d);
    case 'f': { /* a float travels in the low 32 bits of its register */
      uint64_t bits;
      uint32_t lo;
      float f;
      memcpy(&bits, &d, 8);
      lo = (uint32_t)bits;
      memcpy(&f, &lo, 4);
      return PyFloat_FromDouble(f);
    }
    default: return NULL;
  }
}

/* Python result -> register value.  Integers wrap to the type's width, as C
   conversions do; a wrong type is an error. */
static int result_from_py(char code, PyObject *r, W *w, double *d) {
  if (code == 'v') return 0;
  if (code == 'd' || code == 'f') {
    *d = PyFloat_AsDouble(r);
    return *d == -1.0 && PyErr_Occurred() ? -1 : 0;
  }
  if (code == 'p' && r == Py_None) {
    *w = 0;
    return 0;
  }
  if (!PyLong_Check(r)) {
    PyErr_Format(PyExc_TypeError, "closure result must be int, not %.100s", Py_TYPE(r)->tp_name);
    return -1;
  }
  unsigned long long u = PyLong_AsUnsignedLongLongMask(r);
  if (u == (unsigned long long)-1 && PyErr_Occurred()) return -1;
  switch (code) { /* sign- or zero-extend from the type's width */
    case 'b': *w = (W)(int64_t)(int8_t)u; break;
    case 'B': *w = (uint8_t)u; break;
    case 'h': *w = (W)(int64_t)(int16_t)u; break;
    case 'H': *w = (uint16_t)u; break;
    case 'i': *w = (W)(int64_t)(int32_t)u; break;
    case 'I': *w = (uint32_t)u; break;
    default: *w = (W)u; break;
  }
  return 0;
}

static void invoke(CxClosure *self, const W *w, const double *d, W *rw, double *rd) {
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject *argv[MAX_ARGS];
  int n = 0, wi = 0, di = 0, ok = 1;
  *rw = 0;
  *rd = 0.0;
  for (; n < self->nargs; n++) {
    char c = self->args[n];
    argv[n] = is_fp_code(c) ? arg_to_py(c, 0, d[di++]) : arg_to_py(c, w[wi++], 0.0);
    if (!argv[n]) {
      ok = 0;
      break;
    }
  }
  PyObject *r = ok ? PyObject_Vectorcall(self->callable, argv, (size_t)n, NULL) : NULL;
  for (int k = 0; k < n; k++) Py_DECREF(argv[k]);
  if (!r || result_from_py(self->ret, r, rw, rd) < 0) {
    PyErr_WriteUnraisable(self->callable);
    *rw = 0;
    *rd = 0.0;
  }
  Py_XDECREF(r);
  PyGILState_Release(g);
}

#define PARAMS W w0, W w1, W w2, W w3, W w4, W w5, double d0, double d1, double d2, double d3, \
               double d4, double d5, double d6, double d7
#define COLLECT                                               \
  CxClosure *self = cosmoext_closure_userdata(); /* first! */ \
  const W w[MAX_INT_ARGS] = {w0, w1, w2, w3, w4, w5};         \
  const double d[MAX_FP_ARGS] = {d0, d1, d2, d3, d4, d5, d6, d7};

static W handler_int(PARAMS) {
  COLLECT
  W rw;
  double rd;
  invoke(self, w, d, &rw, &rd);
  return rw;
}

static double handler_double(PARAMS) {
  COLLECT
  W rw;
  double rd;
  invoke(self, w, d, &rw, &rd);
  return rd;
}

static float handler_float(PARAMS) {
  COLLECT
  W rw;
  double rd;
  invoke(self, w, d, &rw, &rd);
  return (float)rd;
}

static int parse_signature(CxClosure *self, const char *s) {
  int ni = 0, nf = 0;
  if (!s[0] || !strchr("vbBhHiIlLqQznpfd", s[0]) || s[1] != '(') goto bad;
  self->ret = s[0];
  const char *p = s + 2;
  for (; *p && *p != ')'; p++) {
    if (is_int_code(*p)) {
      ni++;
    } else if (is_fp_code(*p)) {
      nf++;
    } else {
      goto bad;
    }
    if (ni > MAX_INT_ARGS || nf > MAX_FP_ARGS) {
      PyErr_Format(PyExc_ValueError,
                   "closure signature %R: at most %d integer/pointer and %d floating-point "
                   "arguments (the ones passed in registers)",
                   self->signature, MAX_INT_ARGS, MAX_FP_ARGS);
      return -1;
    }
    self->args[self->nargs++] = *p;
  }
  if (*p != ')' || p[1]) goto bad;
  self->args[self->nargs] = 0;
  return 0;
bad:
  PyErr_Format(PyExc_ValueError,
               "bad closure signature %R: expected 'R(ARGS)' with R one of vbBhHiIlLqQznpfd "
               "and ARGS of bBhHiIlLqQznpfd, e.g. 'i(pp)'",
               self->signature);
  return -1;
}

static void closure_release(CxClosure *self) {
  if (self->fn) {
    cosmoext_closure_free(self->fn);
    self->fn = NULL;
  }
  Py_CLEAR(self->callable);
}

static PyObject *closure_new_py(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"callable", "signature", NULL};
  PyObject *callable, *sig;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OU:closure", kwlist, &callable, &sig)) return NULL;
  if (!PyCallable_Check(callable)) {
    PyErr_Format(PyExc_TypeError, "closure(): %.100s object is not callable",
                 Py_TYPE(callable)->tp_name);
    return NULL;
  }
  const char *s = PyUnicode_AsUTF8(sig);
  if (!s) return NULL;
  CxClosure *self = (CxClosure *)type->tp_alloc(type, 0);
  if (!self) return NULL;
  self->signature = Py_NewRef(sig);
  if (parse_signature(self, s) < 0) {
    Py_DECREF(self);
    return NULL;
  }
  void *h = self->ret == 'd' ? (void *)handler_double
          : self->ret == 'f' ? (void *)handler_float
                             : (void *)handler_int;
  self->callable = Py_NewRef(callable);
  self->fn = cosmoext_closure_new(h, self);
  if (!self->fn) {
    struct cx_closure_info info;
    cx_closure_info(&info);
    Py_DECREF(self);
    return PyErr_Format(PyExc_MemoryError,
                        "closure pool exhausted: all %zu closures are in use (free some with "
                        ".free())",
                        info.capacity);
  }
  return (PyObject *)self;
}

static void closure_dealloc(CxClosure *self) {
  closure_release(self);
  Py_CLEAR(self->signature);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *closure_free(CxClosure *self, PyObject *noargs) {
  (void)noargs;
  closure_release(self);
  Py_RETURN_NONE;
}

static PyObject *closure_enter(CxClosure *self, PyObject *noargs) {
  (void)noargs;
  return Py_NewRef((PyObject *)self);
}

static PyObject *closure_exit(CxClosure *self, PyObject *args) {
  (void)args;
  closure_release(self);
  Py_RETURN_FALSE;
}

static PyObject *closure_address(CxClosure *self, void *closure) {
  (void)closure;
  if (!self->fn) {
    PyErr_SetString(PyExc_ValueError, "closure has been freed");
    return NULL;
  }
  return PyLong_FromVoidPtr(self->fn);
}

static PyObject *closure_callable(CxClosure *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->callable ? self->callable : Py_None);
}

static PyObject *closure_signature(CxClosure *self, void *closure) {
  (void)closure;
  return Py_NewRef(self->signature);
}

static PyObject *closure_freed(CxClosure *self, void *closure) {
  (void)closure;
  return PyBool_FromLong(self->fn == NULL);
}

static PyObject *closure_repr(CxClosure *self) {
  if (!self->fn) return PyUnicode_FromFormat("<cosmoext closure %R, freed>", self->signature);
  return PyUnicode_FromFormat("<cosmoext closure %R at %p calling %R>", self->signature, self->fn,
                              self->callable);
}

static PyMethodDef closure_methods[] = {
    {"free", (PyCFunction)closure_free, METH_NOARGS,
     "Return the closure to the pool and drop the callable (idempotent)."},
    {"__enter__", (PyCFunction)closure_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)closure_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef closure_getset[] = {
    {"address", (getter)closure_address, NULL, "The C function pointer, as an int.", NULL},
    {"callable", (getter)closure_callable, NULL, "The Python callable (None once freed).", NULL},
    {"signature", (getter)closure_signature, NULL, "The signature string.", NULL},
    {"freed", (getter)closure_freed, NULL, "True after free().", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject cx_closure_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cosmoext._runtime.closure",
    .tp_basicsize = sizeof(CxClosure),
    .tp_dealloc = (destructor)closure_dealloc,
    .tp_repr = (reprfunc)closure_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "closure(callable, signature)\n--\n\n"
              "A C function pointer (.address) that calls callable, from the runtime's "
              "closure pool: no writable+executable memory is involved.  Keep the object "
              "alive while C code may call it; .free() (or leaving a with block) returns it "
              "to the pool.  signature is 'R(ARGS)', e.g. 'i(pp)' for a qsort comparator.",
    .tp_methods = closure_methods,
    .tp_getset = closure_getset,
    .tp_new = closure_new_py,
};

PyObject *cx_closure_pool_info(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  struct cx_closure_info i;
  cx_closure_info(&i);
  return Py_BuildValue("{s:n,s:n,s:n,s:n,s:K,s:K,s:n,s:s}", "capacity", (Py_ssize_t)i.capacity,
                       "live", (Py_ssize_t)i.live, "peak", (Py_ssize_t)i.peak, "stub_size",
                       (Py_ssize_t)i.stub_size, "stubs", (unsigned long long)i.stubs, "slots",
                       (unsigned long long)i.slots, "slot_size", (Py_ssize_t)i.slot_size, "arch",
                       i.arch);
}

int cx_pyclosure_init(PyObject *module) {
  if (PyType_Ready(&cx_closure_type) < 0) return -1;
  return PyModule_AddObjectRef(module, "closure", (PyObject *)&cx_closure_type);
}
