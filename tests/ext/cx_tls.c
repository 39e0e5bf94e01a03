/*
 * cx_tls: C thread-local storage (__thread), zero- and value-initialised.
 *
 * run_threads() starts native pthreads that never touch Python objects;
 * each increments its own thread-local counters and reports the result.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static __thread long counter;      /* .tbss */
static __thread long counter2 = 7; /* .tdata */

/* noinline: every step really performs a TLS access */
__attribute__((noinline)) static void
step_counter(void)
{
    counter++;
}

__attribute__((noinline)) static void
step_both(void)
{
    counter++;
    counter2++;
}

static PyObject *
tls_bump(PyObject *self, PyObject *args)
{
    long n = 1, i;

    (void)self;
    if (!PyArg_ParseTuple(args, "|l:bump", &n)) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        step_counter();
    }
    return PyLong_FromLong(counter);
}

static PyObject *
tls_get(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(counter);
}

static PyObject *
tls_get2(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(counter2);
}

static PyObject *
tls_set2(PyObject *self, PyObject *args)
{
    long v;

    (void)self;
    if (!PyArg_ParseTuple(args, "l:set2", &v)) {
        return NULL;
    }
    counter2 = v;
    Py_RETURN_NONE;
}

static PyObject *
tls_reset(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    counter = 0;
    Py_RETURN_NONE;
}

static PyObject *
tls_addr(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromVoidPtr((void *)&counter);
}

/* ------------------------------------------------------------------ */
/* Native threads                                                      */

/* A start barrier: opens when every thread has arrived (or main aborts). */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long arrived;
    long target;
    int open;
};

struct worker {
    struct gate *gate;
    long iters;
    long result;    /* counter after the loop */
    long c2_start;  /* counter2 when the thread started (expect 7) */
    long c2_end;    /* counter2 after the loop (expect 7 + iters) */
    uintptr_t addr; /* &counter in that thread */
};

static void *
worker_main(void *p)
{
    struct worker *w = (struct worker *)p;
    long i;

    w->c2_start = counter2;
    w->addr = (uintptr_t)&counter;
    /* wait until every thread is running: all are alive at the same time,
     * so their TLS blocks must be distinct, and the loops run concurrently */
    pthread_mutex_lock(&w->gate->mu);
    if (++w->gate->arrived >= w->gate->target) {
        w->gate->open = 1;
        pthread_cond_broadcast(&w->gate->cv);
    }
    while (!w->gate->open) {
        pthread_cond_wait(&w->gate->cv, &w->gate->mu);
    }
    pthread_mutex_unlock(&w->gate->mu);
    for (i = 0; i < w->iters; i++) {
        step_both();
    }
    w->result = counter;
    w->c2_end = counter2;
    return NULL;
}

/* Runs the threads; returns 0 or an errno value. Needs no GIL. */
static int
run_workers(struct worker *workers, pthread_t *tids, long nthreads, long iters)
{
    struct gate gate;
    long i, started = 0;
    int err = 0;

    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    gate.arrived = 0;
    gate.target = nthreads;
    gate.open = 0;
    for (i = 0; i < nthreads; i++) {
        workers[i].gate = &gate;
        workers[i].iters = iters;
        workers[i].result = -1;
        workers[i].c2_start = -1;
        workers[i].c2_end = -1;
        workers[i].addr = 0;
        err = pthread_create(&tids[i], NULL, worker_main, &workers[i]);
        if (err != 0) {
            break;
        }
        started++;
    }
    if (started < nthreads) {
        /* creation failed: release the threads that did start */
        pthread_mutex_lock(&gate.mu);
        gate.open = 1;
        pthread_cond_broadcast(&gate.cv);
        pthread_mutex_unlock(&gate.mu);
    }
    for (i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    pthread_cond_destroy(&gate.cv);
    pthread_mutex_destroy(&gate.mu);
    return err;
}

static struct worker *
run_threads_common(long nthreads, long iters)
{
    struct worker *workers;
    pthread_t *tids;
    int err;

    if (nthreads < 1 || nthreads > 1024) {
        PyErr_SetString(PyExc_ValueError, "nthreads must be in 1..1024");
        return NULL;
    }
    if (iters < 0) {
        PyErr_SetString(PyExc_ValueError, "iters must be >= 0");
        return NULL;
    }
    workers = (struct worker *)calloc((size_t)nthreads, sizeof(*workers));
    tids = (pthread_t *)calloc((size_t)nthreads, sizeof(*tids));
    if (workers == NULL || tids == NULL) {
        free(workers);
        free(tids);
        PyErr_NoMemory();
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    err = run_workers(workers, tids, nthreads, iters);
    Py_END_ALLOW_THREADS
    free(tids);
    if (err != 0) {
        free(workers);
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return workers;
}

static PyObject *
tls_run_threads(PyObject *self, PyObject *args)
{
    long nthreads, iters, i;
    struct worker *workers;
    PyObject *list;

    (void)self;
    if (!PyArg_ParseTuple(args, "ll:run_threads", &nthreads, &iters)) {
        return NULL;
    }
    workers = run_threads_common(nthreads, iters);
    if (workers == NULL) {
        return NULL;
    }
    list = PyList_New(nthreads);
    if (list != NULL) {
        for (i = 0; i < nthreads; i++) {
            PyObject *v = PyLong_FromLong(workers[i].result);
            if (v == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, v);
        }
    }
    free(workers);
    return list;
}

static PyObject *
tls_run_threads_detail(PyObject *self, PyObject *args)
{
    /* -> [(count, counter2 at start, counter2 at end, &counter), ...] */
    long nthreads, iters, i;
    struct worker *workers;
    PyObject *list;

    (void)self;
    if (!PyArg_ParseTuple(args, "ll:run_threads_detail", &nthreads, &iters)) {
        return NULL;
    }
    workers = run_threads_common(nthreads, iters);
    if (workers == NULL) {
        return NULL;
    }
    list = PyList_New(nthreads);
    if (list != NULL) {
        for (i = 0; i < nthreads; i++) {
            PyObject *v = Py_BuildValue("(lllN)", workers[i].result,
                                        workers[i].c2_start, workers[i].c2_end,
                                        PyLong_FromVoidPtr((void *)workers[i].addr));
            if (v == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, v);
        }
    }
    free(workers);
    return list;
}

static PyMethodDef tls_methods[] = {
    {"bump", tls_bump, METH_VARARGS, "bump(n=1): add 1 to this thread's counter n times"},
    {"get", tls_get, METH_NOARGS, "this thread's counter"},
    {"get2", tls_get2, METH_NOARGS, "this thread's counter2 (starts at 7)"},
    {"set2", tls_set2, METH_VARARGS, "set this thread's counter2"},
    {"reset", tls_reset, METH_NOARGS, "zero this thread's counter"},
    {"addr", tls_addr, METH_NOARGS, "address of this thread's counter"},
    {"run_threads", tls_run_threads, METH_VARARGS,
     "run_threads(n, iters) -> each native thread's final counter"},
    {"run_threads_detail", tls_run_threads_detail, METH_VARARGS,
     "run_threads_detail(n, iters) -> [(count, c2_start, c2_end, addr)]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tls_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "cx_tls",
    .m_doc = "C __thread variables (test extension).",
    .m_size = -1,
    .m_methods = tls_methods,
};

PyMODINIT_FUNC
PyInit_cx_tls(void)
{
    return PyModule_Create(&tls_module);
}
