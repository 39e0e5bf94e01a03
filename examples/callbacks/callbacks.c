/* callbacks: C code that calls Python, through closures from the cosmoext
   runtime (cosmoext.h).  Built into callbacks.cosmoext by build.sh:

       cosmoext build-ext --name callbacks callbacks.c -I "$(python3 -c \
           'import cosmoext; print(cosmoext.get_include())')"

   1. sort(items, cmp): C qsort() with a Python comparator.  qsort takes a bare
      function pointer and no user data, so the comparator is a closure made
      here with cosmoext_closure_new(); its handler finds the Python callable
      with cosmoext_closure_userdata().
   2. run_loop(timers, ticks): a small C event loop (the kind of C library
      whose callbacks are plain `void (*)(long)` pointers) calling many Python
      callbacks, one closure each.
   3. sort_ints(items, address) / run_loop_addresses(timers, ticks): the same
      C code driven by closures made in Python with
      cosmoext._runtime.closure(callable, signature); the C code releases the
      GIL, and the closures take it back when they call Python.
   4. call_ii_many(address, n): call an `int (*)(int, int)` n times (for
      benchmarks/bench_closures.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#include "cosmoext.h"

/* ---- 1. qsort with a Python comparator ------------------------------------- */

struct sort_ctx {
  PyObject *cmp;
  int failed; /* the comparator raised: stop calling it, report afterwards */
};

static int compare(const void *a, const void *b) {
  struct sort_ctx *ctx = cosmoext_closure_userdata(); /* first thing: see cosmoext.h */
  if (ctx->failed) return 0;
  PyObject *r = PyObject_CallFunctionObjArgs(ctx->cmp, *(PyObject *const *)a,
                                             *(PyObject *const *)b, NULL);
  long v = r ? PyLong_AsLong(r) : -1;
  Py_XDECREF(r);
  if (PyErr_Occurred()) {
    ctx->failed = 1;
    return 0;
  }
  return (v > 0) - (v < 0);
}

static PyObject *sort(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *items, *cmp;
  if (!PyArg_ParseTuple(args, "OO:sort", &items, &cmp)) return NULL;
  PyObject *list = PySequence_List(items);
  if (!list) return NULL;
  struct sort_ctx ctx = {cmp, 0};
  int (*c)(const void *, const void *) =
      (int (*)(const void *, const void *))cosmoext_closure_new((void *)compare, &ctx);
  if (!c) {
    Py_DECREF(list);
    return PyErr_Format(PyExc_MemoryError, "no closure available");
  }
  /* qsort moves the list's item pointers in place; the GIL stays held, so
     the comparator calls Python directly. */
  qsort(((PyListObject *)list)->ob_item, (size_t)PyList_GET_SIZE(list), sizeof(PyObject *), c);
  cosmoext_closure_free((void *)c);
  if (ctx.failed) {
    Py_DECREF(list);
    return NULL;
  }
  return list;
}

/* sort_ints(items, address): qsort a C int array with the comparator at
   address, e.g. cosmoext._runtime.closure(cmp, "i(pp)").address, whose
   Python callable receives two addresses (read them with peek_int). */
static PyObject *sort_ints(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *items, *addr;
  if (!PyArg_ParseTuple(args, "OO:sort_ints", &items, &addr)) return NULL;
  int (*c)(const void *, const void *) = (int (*)(const void *, const void *))PyLong_AsVoidPtr(addr);
  if (!c) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "NULL comparator");
  PyObject *seq = PySequence_Fast(items, "items must be a sequence");
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  int *v = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) {
    Py_DECREF(seq);
    return PyErr_NoMemory();
  }
  for (Py_ssize_t i = 0; i < n; i++) v[i] = (int)PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
  Py_DECREF(seq);
  if (PyErr_Occurred()) {
    PyMem_Free(v);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS
  qsort(v, (size_t)n, sizeof *v, c);
  Py_END_ALLOW_THREADS
  PyObject *out = PyList_New(n);
  for (Py_ssize_t i = 0; out && i < n; i++) PyList_SET_ITEM(out, i, PyLong_FromLong(v[i]));
  PyMem_Free(v);
  return out;
}

static PyObject *peek_int(PyObject *self, PyObject *arg) {
  (void)self;
  const int *p = PyLong_AsVoidPtr(arg);
  if (!p) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "NULL pointer");
  return PyLong_FromLong(*p);
}

/* ---- 2. a C event loop ------------------------------------------------------- */

/* The "library": knows nothing about Python, takes bare callbacks. */
typedef void (*tick_fn)(long tick);
struct timer {
  tick_fn fn;
  long period;
};

static long loop_run(const struct timer *t, size_t n, long ticks, const int *stop) {
  long fired = 0;
  for (long tick = 1; tick <= ticks && !*stop; tick++)
    for (size_t i = 0; i < n && !*stop; i++)
      if (tick % t[i].period == 0) {
        t[i].fn(tick);
        fired++;
      }
  return fired;
}

struct tick_ctx {
  PyObject *fn;
  int *stop;
};

static void on_tick(long tick) {
  struct tick_ctx *ctx = cosmoext_closure_userdata();
  PyObject *r = PyObject_CallFunction(ctx->fn, "l", tick);
  if (r) {
    Py_DECREF(r);
  } else {
    *ctx->stop = 1; /* the exception propagates from run_loop */
  }
}

static int parse_timers(PyObject *timers, struct timer **out, Py_ssize_t *n, PyObject ***fns) {
  PyObject *seq = PySequence_Fast(timers, "timers must be a sequence of (callback, period)");
  if (!seq) return -1;
  *n = PySequence_Fast_GET_SIZE(seq);
  *out = PyMem_Calloc((size_t)(*n ? *n : 1), sizeof **out);
  *fns = PyMem_Calloc((size_t)(*n ? *n : 1), sizeof **fns);
  if (!*out || !*fns) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < *n; i++) {
    PyObject *fn;
    long period;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Ol", &fn, &period)) break;
    if (period < 1) {
      PyErr_SetString(PyExc_ValueError, "period must be >= 1");
      break;
    }
    (*fns)[i] = fn;
    (*out)[i].period = period;
  }
  Py_DECREF(seq);
  return PyErr_Occurred() ? -1 : 0;
}

/* run_loop(timers, ticks) -> callbacks fired; timers: [(callable, period)] */
static PyObject *run_loop(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *timers;
  long ticks;
  if (!PyArg_ParseTuple(args, "Ol:run_loop", &timers, &ticks)) return NULL;
  struct timer *t = NULL;
  PyObject **fns = NULL;
  struct tick_ctx *ctx = NULL;
  Py_ssize_t n = 0, made = 0;
  int stop = 0;
  long fired = -1;
  if (parse_timers(timers, &t, &n, &fns) < 0) goto done;
  ctx = PyMem_Calloc((size_t)(n ? n : 1), sizeof *ctx);
  if (!ctx) {
    PyErr_NoMemory();
    goto done;
  }
  for (; made < n; made++) {
    ctx[made] = (struct tick_ctx){fns[made], &stop};
    t[made].fn = (tick_fn)cosmoext_closure_new((void *)on_tick, &ctx[made]);
    if (!t[made].fn) {
      PyErr_Format(PyExc_MemoryError, "no closure available for timer %zd", made);
      goto done;
    }
  }
  fired = loop_run(t, (size_t)n, ticks, &stop);
done:
  for (Py_ssize_t i = 0; i < made; i++) cosmoext_closure_free((void *)t[i].fn);
  PyMem_Free(t);
  PyMem_Free(fns);
  PyMem_Free(ctx);
  if (PyErr_Occurred()) return NULL;
  return PyLong_FromLong(fired);
}

/* run_loop_addresses(timers, ticks): timers: [(address of a "v(l)" closure, period)];
   runs without the GIL (the closures take it). */
static PyObject *run_loop_addresses(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *timers;
  long ticks;
  if (!PyArg_ParseTuple(args, "Ol:run_loop_addresses", &timers, &ticks)) return NULL;
  struct timer *t = NULL;
  PyObject **addrs = NULL;
  Py_ssize_t n = 0;
  long fired = -1;
  int stop = 0;
  if (parse_timers(timers, &t, &n, &addrs) == 0) {
    for (Py_ssize_t i = 0; i < n && !PyErr_Occurred(); i++)
      if (!(t[i].fn = (tick_fn)PyLong_AsVoidPtr(addrs[i])) && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "NULL callback address");
    if (!PyErr_Occurred()) {
      Py_BEGIN_ALLOW_THREADS
      fired = loop_run(t, (size_t)n, ticks, &stop);
      Py_END_ALLOW_THREADS
    }
  }
  PyMem_Free(t);
  PyMem_Free(addrs);
  if (PyErr_Occurred()) return NULL;
  return PyLong_FromLong(fired);
}

/* ---- 3. for the benchmark ---------------------------------------------------- */

static PyObject *call_ii_many(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *addr;
  long n;
  if (!PyArg_ParseTuple(args, "Ol:call_ii_many", &addr, &n)) return NULL;
  int (*f)(int, int) = (int (*)(int, int))PyLong_AsVoidPtr(addr);
  if (!f) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "NULL");
  long long sum = 0;
  for (long i = 0; i < n; i++) sum += f((int)i, 1);
  return PyLong_FromLongLong(sum);
}

static int nop_ii(int a, int b) { return a + b; }

/* new_free_many(n): cosmoext_closure_new + cosmoext_closure_free, n times */
static PyObject *new_free_many(PyObject *self, PyObject *arg) {
  (void)self;
  long n = PyLong_AsLong(arg);
  if (n == -1 && PyErr_Occurred()) return NULL;
  for (long i = 0; i < n; i++) {
    void *f = cosmoext_closure_new((void *)nop_ii, NULL);
    if (!f) return PyErr_NoMemory();
    cosmoext_closure_free(f);
  }
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"sort", sort, METH_VARARGS, "sort(items, cmp): C qsort with a Python comparator."},
    {"sort_ints", sort_ints, METH_VARARGS, "sort_ints(items, address): qsort ints with a closure."},
    {"peek_int", peek_int, METH_O, "peek_int(address): the C int stored there."},
    {"run_loop", run_loop, METH_VARARGS, "run_loop([(callback, period)], ticks) -> fired."},
    {"run_loop_addresses", run_loop_addresses, METH_VARARGS,
     "run_loop_addresses([(address, period)], ticks) -> fired, without the GIL."},
    {"call_ii_many", call_ii_many, METH_VARARGS, "call an int(*)(int,int) n times; the sum."},
    {"new_free_many", new_free_many, METH_O, "cosmoext_closure_new/free n times."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT, "callbacks", "C code calling Python through cosmoext closures.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_callbacks(void) { return PyModule_Create(&def); }
