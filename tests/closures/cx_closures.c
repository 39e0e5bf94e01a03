/* cx_closures: a test extension (built as a .cosmoext by tests/test_closures.py)
   that calls closures from C, the way C libraries call callbacks:
   - call(addr, sig, *args): calls a function pointer through the real C
     prototype named by sig (so the tests exercise the actual ABI);
   - the C closure API (cosmoext.h) used from inside an image;
   - threads: pthreads creating/calling/freeing closures, and raw pthreads
     calling Python closures (which take the GIL themselves). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cosmoext.h"

static void *addr_of(PyObject *o) {
  void *p = PyLong_AsVoidPtr(o);
  if (!p && !PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "NULL function pointer");
  return p;
}

#define A(i) PyTuple_GET_ITEM(args, (i) + 2)
#define L(i) PyLong_AsLongLong(A(i))
#define U(i) PyLong_AsUnsignedLongLongMask(A(i))
#define D(i) PyFloat_AsDouble(A(i))
#define P(i) PyLong_AsVoidPtr(A(i))

/* call(addr, sig, *args) */
static PyObject *call(PyObject *self, PyObject *args) {
  (void)self;
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (n < 2) return PyErr_Format(PyExc_TypeError, "call(addr, sig, *args)");
  void *f = addr_of(PyTuple_GET_ITEM(args, 0));
  const char *sig = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 1));
  if (!f || !sig) return NULL;
  const char *lp = strchr(sig, '('), *rp = strchr(sig, ')');
  if (!lp || !rp || rp < lp || n - 2 != rp - lp - 1)
    return PyErr_Format(PyExc_TypeError, "call(): %s takes %d arguments", sig,
                        lp && rp ? (int)(rp - lp - 1) : -1);
  PyObject *r = NULL;
#define IS(s) (strcmp(sig, s) == 0)
  if (IS("i(ii)")) {
    int a = (int)L(0), b = (int)L(1);
    if (!PyErr_Occurred()) r = PyLong_FromLong(((int (*)(int, int))f)(a, b));
  } else if (IS("i(pp)")) {
    void *a = P(0), *b = P(1);
    if (!PyErr_Occurred()) r = PyLong_FromLong(((int (*)(void *, void *))f)(a, b));
  } else if (IS("v(p)")) {
    void *a = P(0);
    if (!PyErr_Occurred()) {
      ((void (*)(void *))f)(a);
      r = Py_NewRef(Py_None);
    }
  } else if (IS("v()")) {
    ((void (*)(void))f)();
    r = Py_NewRef(Py_None);
  } else if (IS("i()")) {
    r = PyLong_FromLong(((int (*)(void))f)());
  } else if (IS("l(l)")) {
    long a = (long)L(0);
    if (!PyErr_Occurred()) r = PyLong_FromLong(((long (*)(long))f)(a));
  } else if (IS("d(d)")) {
    double a = D(0);
    if (!PyErr_Occurred()) r = PyFloat_FromDouble(((double (*)(double))f)(a));
  } else if (IS("f(f)")) {
    float a = (float)D(0);
    if (!PyErr_Occurred()) r = PyFloat_FromDouble(((float (*)(float))f)(a));
  } else if (IS("B(b)")) {
    signed char a = (signed char)L(0);
    if (!PyErr_Occurred()) r = PyLong_FromLong(((unsigned char (*)(signed char))f)(a));
  } else if (IS("h(H)")) {
    unsigned short a = (unsigned short)L(0);
    if (!PyErr_Occurred()) r = PyLong_FromLong(((short (*)(unsigned short))f)(a));
  } else if (IS("I(I)")) {
    unsigned a = (unsigned)U(0);
    if (!PyErr_Occurred()) r = PyLong_FromUnsignedLong(((unsigned (*)(unsigned))f)(a));
  } else if (IS("Q(Q)")) {
    unsigned long long a = U(0);
    if (!PyErr_Occurred())
      r = PyLong_FromUnsignedLongLong(((unsigned long long (*)(unsigned long long))f)(a));
  } else if (IS("z(n)")) {
    Py_ssize_t a = (Py_ssize_t)L(0);
    if (!PyErr_Occurred()) r = PyLong_FromSize_t(((size_t (*)(Py_ssize_t))f)(a));
  } else if (IS("p(p)")) {
    void *a = P(0);
    if (!PyErr_Occurred()) r = PyLong_FromVoidPtr(((void *(*)(void *))f)(a));
  } else if (IS("q(qqqqqq)")) {
    long long a = L(0), b = L(1), c = L(2), d = L(3), e = L(4), g = L(5);
    if (!PyErr_Occurred())
      r = PyLong_FromLongLong(((long long (*)(long long, long long, long long, long long,
                                               long long, long long))f)(a, b, c, d, e, g));
  } else if (IS("d(dddddddd)")) {
    double a = D(0), b = D(1), c = D(2), d = D(3), e = D(4), g = D(5), h = D(6), i = D(7);
    if (!PyErr_Occurred())
      r = PyFloat_FromDouble(((double (*)(double, double, double, double, double, double, double,
                                          double))f)(a, b, c, d, e, g, h, i));
  } else if (IS("d(idlfpd)")) {
    int a = (int)L(0);
    double b = D(1);
    long c = (long)L(2);
    float d = (float)D(3);
    void *e = P(4);
    double g = D(5);
    if (!PyErr_Occurred())
      r = PyFloat_FromDouble(
          ((double (*)(int, double, long, float, void *, double))f)(a, b, c, d, e, g));
  } else {
    return PyErr_Format(PyExc_ValueError, "call(): no C caller for %s", sig);
  }
#undef IS
  return r;
}

/* ---- qsort through a closure address ("i(pp)") ------------------------ */

static PyObject *qsort_ints(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *addr, *list;
  if (!PyArg_ParseTuple(args, "OO!", &addr, &PyList_Type, &list)) return NULL;
  int (*cmp)(const void *, const void *) = (int (*)(const void *, const void *))addr_of(addr);
  if (!cmp) return NULL;
  Py_ssize_t n = PyList_GET_SIZE(list);
  int *v = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) return PyErr_NoMemory();
  for (Py_ssize_t i = 0; i < n; i++) v[i] = (int)PyLong_AsLong(PyList_GET_ITEM(list, i));
  if (PyErr_Occurred()) {
    PyMem_Free(v);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS /* the closure takes the GIL itself */
  qsort(v, (size_t)n, sizeof *v, cmp);
  Py_END_ALLOW_THREADS
  PyObject *out = PyList_New(n);
  for (Py_ssize_t i = 0; out && i < n; i++) PyList_SET_ITEM(out, i, PyLong_FromLong(v[i]));
  PyMem_Free(v);
  return out;
}

static PyObject *peek_int(PyObject *self, PyObject *arg) {
  (void)self;
  int *p = PyLong_AsVoidPtr(arg);
  if (!p) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "NULL");
  return PyLong_FromLong(*p);
}

/* ---- the C closure API from inside an image -------------------------- */

static int add_ud(int x) { return x + (int)(intptr_t)cosmoext_closure_userdata(); }

static PyObject *c_new(PyObject *self, PyObject *arg) { /* closure adding `arg` */
  (void)self;
  long k = PyLong_AsLong(arg);
  if (k == -1 && PyErr_Occurred()) return NULL;
  void *f = cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)k);
  if (!f) return PyErr_Format(PyExc_MemoryError, "cosmoext_closure_new returned NULL");
  return PyLong_FromVoidPtr(f);
}

static PyObject *c_free(PyObject *self, PyObject *arg) {
  (void)self;
  void *f = PyLong_AsVoidPtr(arg);
  if (PyErr_Occurred()) return NULL;
  cosmoext_closure_free(f);
  Py_RETURN_NONE;
}

static PyObject *c_fill(PyObject *self, PyObject *noargs) { /* new() until NULL; free all */
  (void)self;
  (void)noargs;
  size_t cap = 1 << 20, n = 0;
  void **all = malloc(cap * sizeof *all);
  if (!all) return PyErr_NoMemory();
  while (n < cap && (all[n] = cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)n))) n++;
  long bad = 0;
  for (size_t i = 0; i < n; i++)
    if (((int (*)(int))all[i])(1) != 1 + (int)i) bad++;
  for (size_t i = 0; i < n; i++) cosmoext_closure_free(all[i]);
  free(all);
  return Py_BuildValue("nl", (Py_ssize_t)n, bad);
}

/* A C handler that calls a Python callable: the C-API way to wrap one. */
static long py_handler(long x) {
  PyObject *fn = cosmoext_closure_userdata();
  PyGILState_STATE g = PyGILState_Ensure();
  long r = -1;
  PyObject *o = PyObject_CallFunction(fn, "l", x);
  if (o) {
    r = PyLong_AsLong(o);
    Py_DECREF(o);
  }
  if (PyErr_Occurred()) PyErr_WriteUnraisable(fn);
  PyGILState_Release(g);
  return r;
}

static PyObject *c_wrap_call(PyObject *self, PyObject *args) { /* wrap fn, call it on x */
  (void)self;
  PyObject *fn;
  long x;
  if (!PyArg_ParseTuple(args, "Ol", &fn, &x)) return NULL;
  long (*f)(long) = (long (*)(long))cosmoext_closure_new((void *)py_handler, fn);
  if (!f) return PyErr_NoMemory();
  long r = f(x);
  cosmoext_closure_free((void *)f);
  return PyLong_FromLong(r);
}

/* ---- threads --------------------------------------------------------- */

struct job {
  int id, iters;
  long (*shared)(long); /* a Python closure "l(l)" called while others churn, or NULL */
  int shared_every;
  long errors, shared_calls;
};

static void *churn(void *arg) {
  struct job *j = arg;
  enum { WINDOW = 16 };
  int (*live[WINDOW])(int) = {0};
  int key[WINDOW] = {0};
  for (int n = 0; n < j->iters; n++) {
    int w = n % WINDOW;
    if (live[w]) {
      if (live[w](n) != n + key[w]) j->errors++;
      cosmoext_closure_free((void *)live[w]);
    }
    key[w] = j->id * 1000003 + n;
    live[w] = (int (*)(int))cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)key[w]);
    if (!live[w]) {
      j->errors++;
      continue;
    }
    if (live[w](7) != 7 + key[w]) j->errors++;
    if (j->shared && n % j->shared_every == 0) {
      if (j->shared(n) != 2L * n + 1) j->errors++;
      j->shared_calls++;
    }
  }
  for (int w = 0; w < WINDOW; w++)
    if (live[w]) cosmoext_closure_free((void *)live[w]);
  return NULL;
}

/* stress(nthreads, iters[, shared_addr, shared_every]) -> (errors, shared_calls):
   each pthread makes, calls and frees `iters` closures, keeping 16 alive at
   a time; with shared_addr, it also calls that Python closure ("l(l)",
   expected to return 2x+1) every shared_every iterations. */
static PyObject *stress(PyObject *self, PyObject *args) {
  (void)self;
  int nthreads, iters, every = 100;
  PyObject *shared = Py_None;
  if (!PyArg_ParseTuple(args, "ii|Oi", &nthreads, &iters, &shared, &every)) return NULL;
  if (nthreads < 1 || nthreads > 64 || every < 1)
    return PyErr_Format(PyExc_ValueError, "bad arguments");
  long (*sh)(long) = NULL;
  if (shared != Py_None && !(sh = (long (*)(long))addr_of(shared))) return NULL;
  pthread_t th[64];
  struct job jobs[64];
  long errors = 0, calls = 0;
  int started = 0;
  Py_BEGIN_ALLOW_THREADS
  for (; started < nthreads; started++) {
    jobs[started] = (struct job){started, iters, sh, every, 0, 0};
    if (pthread_create(&th[started], NULL, churn, &jobs[started]) != 0) break;
  }
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    errors += jobs[i].errors;
    calls += jobs[i].shared_calls;
  }
  Py_END_ALLOW_THREADS
  if (started < nthreads) return PyErr_Format(PyExc_OSError, "pthread_create failed");
  return Py_BuildValue("ll", errors, calls);
}

struct caller {
  long (*f)(long);
  int ncalls, id;
  long sum;
};

static void *call_loop(void *arg) {
  struct caller *c = arg;
  for (int i = 0; i < c->ncalls; i++) c->sum += c->f((long)c->id * 1000000 + i);
  return NULL;
}

/* call_from_threads(addr, nthreads, ncalls) -> list of per-thread sums of f(id*1e6+i) */
static PyObject *call_from_threads(PyObject *self, PyObject *args) {
  (void)self;
  PyObject *addr;
  int nthreads, ncalls;
  if (!PyArg_ParseTuple(args, "Oii", &addr, &nthreads, &ncalls)) return NULL;
  if (nthreads < 1 || nthreads > 64) return PyErr_Format(PyExc_ValueError, "bad thread count");
  long (*f)(long) = (long (*)(long))addr_of(addr);
  if (!f) return NULL;
  pthread_t th[64];
  struct caller cs[64];
  int started = 0;
  Py_BEGIN_ALLOW_THREADS
  for (; started < nthreads; started++) {
    cs[started] = (struct caller){f, ncalls, started, 0};
    if (pthread_create(&th[started], NULL, call_loop, &cs[started]) != 0) break;
  }
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  Py_END_ALLOW_THREADS
  if (started < nthreads) return PyErr_Format(PyExc_OSError, "pthread_create failed");
  PyObject *out = PyList_New(nthreads);
  for (int i = 0; out && i < nthreads; i++) PyList_SET_ITEM(out, i, PyLong_FromLong(cs[i].sum));
  return out;
}

static PyMethodDef methods[] = {
    {"call", call, METH_VARARGS, "call(addr, sig, *args): call a C function pointer."},
    {"qsort_ints", qsort_ints, METH_VARARGS, "qsort a list of ints with the comparator at addr."},
    {"peek_int", peek_int, METH_O, "The int stored at an address."},
    {"c_new", c_new, METH_O, "cosmoext_closure_new(add_ud, k): a closure returning x + k."},
    {"c_free", c_free, METH_O, "cosmoext_closure_free(addr)."},
    {"c_fill", c_fill, METH_NOARGS, "Allocate closures until NULL; (count, bad calls)."},
    {"c_wrap_call", c_wrap_call, METH_VARARGS, "Wrap a Python callable in C; call it once."},
    {"stress", stress, METH_VARARGS, "stress(nthreads, iters[, shared, every])."},
    {"call_from_threads", call_from_threads, METH_VARARGS, "Call addr from raw pthreads."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cx_closures", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_cx_closures(void) { return PyModule_Create(&def); }
