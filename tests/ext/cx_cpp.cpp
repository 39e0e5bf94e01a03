// cx_cpp: a C++17 extension exercising the C++ runtime inside an image:
// static constructors, function-local statics, STL containers/algorithms,
// exceptions thrown across several frames (and through std::sort), catch(...)
// rethrow, std::exception_ptr and unique_ptr-based RAII during unwinding.
//
// No C++ exception is ever allowed to escape into the interpreter: every
// entry point converts stray exceptions into Python exceptions.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

// ---------------------------------------------------------------------
// Globals with dynamic (constructor-run) initialisation

int g_ctor_runs = 0;

struct Registry {
    std::map<std::string, int> table;
    int magic;
    Registry() : magic(0)
    {
        table["one"] = 1;
        table["two"] = 2;
        table["three"] = 3;
        ++g_ctor_runs;
        magic = 0xC0FFEE;
    }
};

Registry g_registry;
const std::string g_greeting = std::string("hello") + ", " + "cosmoext" + "!";
std::vector<int> g_vector = {3, 1, 2};
std::string g_last_error;

// ---------------------------------------------------------------------
// Function-local static

int g_local_static_inits = 0;

const std::vector<int> &
primes_below_100()
{
    static const std::vector<int> table = [] {
        ++g_local_static_inits;
        std::vector<int> out;
        for (int n = 2; n < 100; ++n) {
            bool prime = true;
            for (int d : out) {
                if (d * d > n) {
                    break;
                }
                if (n % d == 0) {
                    prime = false;
                    break;
                }
            }
            if (prime) {
                out.push_back(n);
            }
        }
        return out;
    }();
    return table;
}

// ---------------------------------------------------------------------
// Exceptions and RAII

class DeepError : public std::exception {
public:
    explicit DeepError(int depth)
        : depth_(depth), msg_("deep error at depth " + std::to_string(depth))
    {
    }
    const char *what() const noexcept override { return msg_.c_str(); }
    int depth() const { return depth_; }

private:
    int depth_;
    std::string msg_;
};

class PoisonError : public std::runtime_error {
public:
    explicit PoisonError(long value)
        : std::runtime_error("poison value " + std::to_string(value)), value_(value)
    {
    }
    long value() const { return value_; }

private:
    long value_;
};

std::atomic<int> g_live_guards{0};
std::atomic<int> g_guards_made{0};

struct Guard {
    Guard()
    {
        ++g_live_guards;
        ++g_guards_made;
    }
    ~Guard() { --g_live_guards; }
    Guard(const Guard &) = delete;
    Guard &operator=(const Guard &) = delete;
};

int g_rethrows = 0;

// Recurse to `target`, holding a unique_ptr<Guard> in every frame; at the
// bottom, sort with a comparator that throws DeepError.
__attribute__((noinline)) int
descend(int level, int target)
{
    std::unique_ptr<Guard> guard = std::make_unique<Guard>();
    if (level >= target) {
        std::vector<int> v = {5, 3, 9, 1, 7, 2, 8};
        std::sort(v.begin(), v.end(), [level](int a, int b) {
            if (a == 9 || b == 9) {
                throw DeepError(level);
            }
            return a < b;
        });
        return -1; // not reached: 9 is always compared
    }
    int r = descend(level + 1, target);
    return r + (guard ? 0 : 1);
}

double
checked_divide(double a, double b)
{
    if (b == 0.0) {
        throw std::runtime_error("division by zero");
    }
    return a / b;
}

std::vector<std::string>
split_words(const std::string &text)
{
    std::istringstream in(text);
    std::vector<std::string> words;
    std::string w;
    while (in >> w) {
        words.push_back(w);
    }
    return words;
}

bool
to_std_string(PyObject *obj, std::string &out)
{
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(obj, &size);
    if (data == nullptr) {
        return false;
    }
    out.assign(data, static_cast<size_t>(size));
    return true;
}

PyObject *
from_std_string(const std::string &s)
{
    return PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size()));
}

PyObject *
string_list(const std::vector<std::string> &items)
{
    PyObject *list = PyList_New(static_cast<Py_ssize_t>(items.size()));
    if (list == nullptr) {
        return nullptr;
    }
    for (size_t i = 0; i < items.size(); ++i) {
        PyObject *s = from_std_string(items[i]);
        if (s == nullptr) {
            Py_DECREF(list);
            return nullptr;
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), s);
    }
    return list;
}

// Convert any escaping C++ exception into a Python exception.
template <typename F>
PyObject *
guarded(F &&body)
{
    try {
        return body();
    }
    catch (const std::exception &e) {
        PyErr_Format(PyExc_RuntimeError, "C++ exception escaped: %s", e.what());
    }
    catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception escaped");
    }
    return nullptr;
}

// ---------------------------------------------------------------------
// Python-visible functions

PyObject *
cpp_sorted_words(PyObject *, PyObject *arg)
{
    return guarded([&]() -> PyObject * {
        std::string text;
        if (!to_std_string(arg, text)) {
            return nullptr;
        }
        std::vector<std::string> words = split_words(text);
        std::sort(words.begin(), words.end(),
                  [](const std::string &a, const std::string &b) {
                      if (a.size() != b.size()) {
                          return a.size() < b.size();
                      }
                      return a < b;
                  });
        return string_list(words);
    });
}

PyObject *
cpp_word_counts(PyObject *, PyObject *arg)
{
    return guarded([&]() -> PyObject * {
        std::string text;
        if (!to_std_string(arg, text)) {
            return nullptr;
        }
        std::map<std::string, int> counts;
        for (const std::string &w : split_words(text)) {
            ++counts[w];
        }
        PyObject *dict = PyDict_New();
        if (dict == nullptr) {
            return nullptr;
        }
        for (const auto &kv : counts) {
            PyObject *value = PyLong_FromLong(kv.second);
            if (value == nullptr) {
                Py_DECREF(dict);
                return nullptr;
            }
            PyObject *key = from_std_string(kv.first);
            if (key == nullptr) {
                Py_DECREF(value);
                Py_DECREF(dict);
                return nullptr;
            }
            int rc = PyDict_SetItem(dict, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (rc < 0) {
                Py_DECREF(dict);
                return nullptr;
            }
        }
        return dict;
    });
}

PyObject *
cpp_safe_div(PyObject *, PyObject *args)
{
    double a, b;
    if (!PyArg_ParseTuple(args, "dd:safe_div", &a, &b)) {
        return nullptr;
    }
    return guarded([&]() -> PyObject * {
        try {
            return PyFloat_FromDouble(checked_divide(a, b));
        }
        catch (const std::runtime_error &e) {
            g_last_error = std::string("safe_div: ") + e.what();
            Py_RETURN_NONE;
        }
    });
}

PyObject *
cpp_last_error(PyObject *, PyObject *)
{
    return from_std_string(g_last_error);
}

PyObject *
cpp_deep_throw(PyObject *, PyObject *args)
{
    int depth;
    if (!PyArg_ParseTuple(args, "i:deep_throw", &depth)) {
        return nullptr;
    }
    if (depth < 0 || depth > 10000) {
        PyErr_SetString(PyExc_ValueError, "depth out of range");
        return nullptr;
    }
    return guarded([&]() -> PyObject * {
        try {
            int r = descend(0, depth);
            return PyLong_FromLong(r); // would mean no exception: a bug
        }
        catch (const DeepError &e) {
            return PyLong_FromLong(e.depth());
        }
    });
}

PyObject *
cpp_live_guards(PyObject *, PyObject *)
{
    return Py_BuildValue("(ii)", g_live_guards.load(), g_guards_made.load());
}

PyObject *
cpp_sort_ints(PyObject *, PyObject *args)
{
    // sort_ints(list_of_ints, poison) -> sorted list, or None when the
    // comparator met `poison` and threw PoisonError out of std::sort.
    PyObject *seq;
    long poison;
    if (!PyArg_ParseTuple(args, "Ol:sort_ints", &seq, &poison)) {
        return nullptr;
    }
    std::vector<long> values;
    PyObject *fast = PySequence_Fast(seq, "sort_ints expects a sequence");
    if (fast == nullptr) {
        return nullptr;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n; ++i) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return nullptr;
        }
        values.push_back(v);
    }
    Py_DECREF(fast);
    return guarded([&]() -> PyObject * {
        try {
            std::sort(values.begin(), values.end(), [poison](long a, long b) {
                if (a == poison || b == poison) {
                    throw PoisonError(poison);
                }
                return a < b;
            });
        }
        catch (const PoisonError &e) {
            g_last_error = e.what();
            Py_RETURN_NONE;
        }
        PyObject *out = PyList_New(static_cast<Py_ssize_t>(values.size()));
        if (out == nullptr) {
            return nullptr;
        }
        for (size_t i = 0; i < values.size(); ++i) {
            PyObject *v = PyLong_FromLong(values[i]);
            if (v == nullptr) {
                Py_DECREF(out);
                return nullptr;
            }
            PyList_SET_ITEM(out, static_cast<Py_ssize_t>(i), v);
        }
        return out;
    });
}

std::string
classify(int kind)
{
    try {
        try {
            std::unique_ptr<Guard> guard = std::make_unique<Guard>();
            switch (kind) {
            case 0:
                throw std::runtime_error("rt");
            case 1:
                throw DeepError(7);
            case 2:
                throw 42;
            case 3:
                throw std::string("str");
            case 4: {
                std::exception_ptr ep;
                try {
                    throw std::logic_error("stored");
                }
                catch (...) {
                    ep = std::current_exception();
                }
                std::rethrow_exception(ep);
            }
            default:
                return "none";
            }
        }
        catch (...) {
            ++g_rethrows;
            throw;
        }
    }
    catch (const DeepError &e) {
        return "DeepError:" + std::to_string(e.depth());
    }
    catch (const std::runtime_error &e) {
        return std::string("runtime_error:") + e.what();
    }
    catch (const std::logic_error &e) {
        return std::string("logic_error:") + e.what();
    }
    catch (int v) {
        return "int:" + std::to_string(v);
    }
    catch (const std::string &s) {
        return "string:" + s;
    }
}

PyObject *
cpp_rethrow(PyObject *, PyObject *args)
{
    int kind;
    if (!PyArg_ParseTuple(args, "i:rethrow", &kind)) {
        return nullptr;
    }
    return guarded([&]() -> PyObject * {
        int before = g_rethrows;
        std::string r = classify(kind);
        return Py_BuildValue("(Ni)", from_std_string(r), g_rethrows - before);
    });
}

PyObject *
cpp_escape(PyObject *, PyObject *)
{
    // A C++ exception deliberately left for the guarded() wrapper.
    return guarded([&]() -> PyObject * {
        std::vector<int> v;
        (void)v.at(3); // throws std::out_of_range
        Py_RETURN_NONE;
    });
}

PyObject *
cpp_static_init_ok(PyObject *, PyObject *)
{
    bool ok = g_registry.magic == 0xC0FFEE && g_registry.table.size() == 3 &&
              g_registry.table.at("two") == 2 && g_ctor_runs == 1 &&
              g_greeting == "hello, cosmoext!" && g_vector.size() == 3 &&
              g_vector[0] == 3 && g_vector[2] == 2;
    return PyBool_FromLong(ok);
}

PyObject *
cpp_registry_get(PyObject *, PyObject *arg)
{
    return guarded([&]() -> PyObject * {
        std::string key;
        if (!to_std_string(arg, key)) {
            return nullptr;
        }
        auto it = g_registry.table.find(key);
        if (it == g_registry.table.end()) {
            PyErr_SetObject(PyExc_KeyError, arg);
            return nullptr;
        }
        return PyLong_FromLong(it->second);
    });
}

PyObject *
cpp_greeting(PyObject *, PyObject *)
{
    return from_std_string(g_greeting);
}

PyObject *
cpp_local_static(PyObject *, PyObject *)
{
    const std::vector<int> &p = primes_below_100();
    long sum = 0;
    for (int v : p) {
        sum += v;
    }
    return Py_BuildValue("(inl)", g_local_static_inits,
                         static_cast<Py_ssize_t>(p.size()), sum);
}

PyObject *
cpp_join(PyObject *, PyObject *args)
{
    PyObject *seq, *sep_obj;
    if (!PyArg_ParseTuple(args, "OU:join", &seq, &sep_obj)) {
        return nullptr;
    }
    return guarded([&]() -> PyObject * {
        std::string sep;
        if (!to_std_string(sep_obj, sep)) {
            return nullptr;
        }
        PyObject *fast = PySequence_Fast(seq, "join expects a sequence");
        if (fast == nullptr) {
            return nullptr;
        }
        std::string out;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        for (Py_ssize_t i = 0; i < n; ++i) {
            std::string item;
            if (!to_std_string(PySequence_Fast_GET_ITEM(fast, i), item)) {
                Py_DECREF(fast);
                return nullptr;
            }
            if (i > 0) {
                out += sep;
            }
            out = out + item;
        }
        Py_DECREF(fast);
        return from_std_string(out);
    });
}

PyMethodDef cpp_methods[] = {
    {"sorted_words", cpp_sorted_words, METH_O,
     "words sorted by (length, text) with a lambda comparator"},
    {"word_counts", cpp_word_counts, METH_O, "dict word -> count via std::map"},
    {"safe_div", cpp_safe_div, METH_VARARGS,
     "a / b, or None when C++ threw on b == 0"},
    {"last_error", cpp_last_error, METH_NOARGS, "message of the last caught exception"},
    {"deep_throw", cpp_deep_throw, METH_VARARGS,
     "throw DeepError at `depth` (from a std::sort comparator), return depth"},
    {"live_guards", cpp_live_guards, METH_NOARGS, "(live Guard objects, Guards made)"},
    {"sort_ints", cpp_sort_ints, METH_VARARGS,
     "sort_ints(values, poison): sorted list, or None if poison was compared"},
    {"rethrow", cpp_rethrow, METH_VARARGS,
     "rethrow(kind) -> (what the outer handler caught, catch(...) rethrows)"},
    {"escape", cpp_escape, METH_NOARGS, "std::out_of_range converted to RuntimeError"},
    {"static_init_ok", cpp_static_init_ok, METH_NOARGS,
     "True if global constructors ran exactly once"},
    {"registry_get", cpp_registry_get, METH_O, "lookup in the global std::map"},
    {"greeting", cpp_greeting, METH_NOARGS, "the global std::string"},
    {"local_static", cpp_local_static, METH_NOARGS,
     "(init count, len, sum) of a function-local static table"},
    {"join", cpp_join, METH_VARARGS, "join(strings, sep) with std::string"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef cpp_module = {
    PyModuleDef_HEAD_INIT,
    "cx_cpp",
    "C++17 runtime features (test extension).",
    -1,
    cpp_methods,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

} // namespace

extern "C" PyMODINIT_FUNC
PyInit_cx_cpp(void)
{
    return PyModule_Create(&cpp_module);
}
