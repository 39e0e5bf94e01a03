// cx_tls_cpp: C++ thread_local with dynamic initialisation and destructors.
//
// - thread_local Tracker: constructor/destructor counted in std::atomic<int>
//   (the destructor must run at thread exit, which needs the runtime's
//   __cxa_thread_atexit support inside the image).
// - thread_local std::vector<int>: a non-trivial object per thread.
// - run_threads(n, iters) uses std::thread and never touches Python objects
//   from the worker threads.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace {

std::atomic<int> g_constructed{0};
std::atomic<int> g_destroyed{0};

struct Tracker {
    long hits;
    long serial;
    Tracker() : hits(0), serial(++g_constructed) {}
    ~Tracker() { ++g_destroyed; }
    Tracker(const Tracker &) = delete;
    Tracker &operator=(const Tracker &) = delete;
};

thread_local Tracker tl_tracker;
thread_local std::vector<int> tl_vec;
thread_local long tl_counter = 0;
thread_local std::string tl_label = "init";

// Start barrier: opens when all `target` threads arrived, or on abort.
struct StartGate {
    std::mutex mu;
    std::condition_variable cv;
    long arrived = 0;
    long target = 0;
    bool open = false;

    void arrive_and_wait()
    {
        std::unique_lock<std::mutex> lock(mu);
        if (++arrived >= target) {
            open = true;
            cv.notify_all();
        }
        cv.wait(lock, [this] { return open; });
    }
    void abort()
    {
        std::lock_guard<std::mutex> lock(mu);
        open = true;
        cv.notify_all();
    }
};

struct Result {
    long vec_size = -1;
    long counter = -1;
    long hits = -1;
    long long vec_sum = -1;
    std::uintptr_t vec_addr = 0;
    bool label_ok = false;
};

void
worker(long iters, Result *out, StartGate *gate)
{
    bool label_ok = (tl_label == "init");
    tl_label += "-worker";
    out->vec_addr = reinterpret_cast<std::uintptr_t>(&tl_vec);
    // every thread is alive once the gate opens, so the addresses recorded
    // above must all be distinct; the loops below then run concurrently
    gate->arrive_and_wait();
    for (long i = 0; i < iters; ++i) {
        tl_vec.push_back(static_cast<int>(i));
        ++tl_counter;
        ++tl_tracker.hits;
    }
    long long sum = 0;
    for (int v : tl_vec) {
        sum += v;
    }
    out->vec_size = static_cast<long>(tl_vec.size());
    out->counter = tl_counter;
    out->hits = tl_tracker.hits;
    out->vec_sum = sum;
    // the thread_local's address is stable for the thread's lifetime
    out->label_ok = label_ok && tl_label == "init-worker" &&
                    out->vec_addr == reinterpret_cast<std::uintptr_t>(&tl_vec);
}

// Returns an empty string on success, else an error message. No GIL needed.
std::string
run_workers(long n, long iters, std::vector<Result> &results)
{
    std::vector<std::thread> threads;
    StartGate gate;
    gate.target = n;
    std::string err;
    try {
        threads.reserve(static_cast<size_t>(n));
        for (long k = 0; k < n; ++k) {
            threads.emplace_back(worker, iters, &results[static_cast<size_t>(k)], &gate);
        }
    }
    catch (const std::exception &e) {
        err = e.what();
        if (err.empty()) {
            err = "thread creation failed";
        }
    }
    if (static_cast<long>(threads.size()) < n) {
        gate.abort(); // creation failed: release the threads that did start
    }
    for (std::thread &t : threads) {
        if (t.joinable()) {
            t.join();
        }
    }
    return err;
}

PyObject *
tlc_run_threads(PyObject *, PyObject *args)
{
    long n, iters;
    if (!PyArg_ParseTuple(args, "ll:run_threads", &n, &iters)) {
        return nullptr;
    }
    if (n < 1 || n > 1024 || iters < 0) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= n <= 1024 and iters >= 0");
        return nullptr;
    }
    std::vector<Result> results;
    std::string err;
    try {
        results.resize(static_cast<size_t>(n));
    }
    catch (const std::exception &) {
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    err = run_workers(n, iters, results);
    Py_END_ALLOW_THREADS
    if (!err.empty()) {
        PyErr_Format(PyExc_RuntimeError, "std::thread failed: %s", err.c_str());
        return nullptr;
    }
    PyObject *list = PyList_New(n);
    if (list == nullptr) {
        return nullptr;
    }
    for (long k = 0; k < n; ++k) {
        const Result &r = results[static_cast<size_t>(k)];
        PyObject *item = Py_BuildValue("(lllLNO)", r.vec_size, r.counter, r.hits,
                                       r.vec_sum,
                                       PyLong_FromVoidPtr(reinterpret_cast<void *>(r.vec_addr)),
                                       r.label_ok ? Py_True : Py_False);
        if (item == nullptr) {
            Py_DECREF(list);
            return nullptr;
        }
        PyList_SET_ITEM(list, k, item);
    }
    return list;
}

PyObject *
tlc_push(PyObject *, PyObject *args)
{
    int v;
    if (!PyArg_ParseTuple(args, "i:push", &v)) {
        return nullptr;
    }
    try {
        tl_vec.push_back(v);
    }
    catch (const std::exception &) {
        return PyErr_NoMemory();
    }
    ++tl_tracker.hits;
    return PyLong_FromSsize_t(static_cast<Py_ssize_t>(tl_vec.size()));
}

PyObject *
tlc_size(PyObject *, PyObject *)
{
    return PyLong_FromSsize_t(static_cast<Py_ssize_t>(tl_vec.size()));
}

PyObject *
tlc_total(PyObject *, PyObject *)
{
    long long sum = 0;
    for (int v : tl_vec) {
        sum += v;
    }
    return PyLong_FromLongLong(sum);
}

PyObject *
tlc_clear(PyObject *, PyObject *)
{
    tl_vec.clear();
    Py_RETURN_NONE;
}

PyObject *
tlc_hits(PyObject *, PyObject *)
{
    return PyLong_FromLong(tl_tracker.hits);
}

PyObject *
tlc_serial(PyObject *, PyObject *)
{
    // serial number of this thread's Tracker (1-based construction order)
    return PyLong_FromLong(tl_tracker.serial);
}

PyObject *
tlc_counts(PyObject *, PyObject *)
{
    return Py_BuildValue("(ii)", g_constructed.load(), g_destroyed.load());
}

PyMethodDef tlc_methods[] = {
    {"run_threads", tlc_run_threads, METH_VARARGS,
     "run_threads(n, iters) -> [(vec_size, counter, hits, vec_sum, &vec, label_ok)]"},
    {"push", tlc_push, METH_VARARGS, "append to this thread's vector; returns size"},
    {"size", tlc_size, METH_NOARGS, "size of this thread's vector"},
    {"total", tlc_total, METH_NOARGS, "sum of this thread's vector"},
    {"clear", tlc_clear, METH_NOARGS, "clear this thread's vector"},
    {"hits", tlc_hits, METH_NOARGS, "this thread's Tracker.hits"},
    {"serial", tlc_serial, METH_NOARGS, "this thread's Tracker construction serial"},
    {"counts", tlc_counts, METH_NOARGS, "(Trackers constructed, Trackers destroyed)"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef tlc_module = {
    PyModuleDef_HEAD_INIT,
    "cx_tls_cpp",
    "C++ thread_local objects (test extension).",
    -1,
    tlc_methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

} // namespace

PyMODINIT_FUNC
PyInit_cx_tls_cpp(void)
{
    return PyModule_Create(&tlc_module);
}
