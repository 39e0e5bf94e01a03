// skdemo._geometry: a small C++17 extension (multi-phase init) using the STL,
// a static constructor and exceptions, all inside the .cosmoext image.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using Point = std::pair<double, double>;

// Dynamic initialisation: runs from the image's .init_array.
const std::string g_units = std::string("square") + " units";

double cross(const Point &o, const Point &a, const Point &b)
{
    return (a.first - o.first) * (b.second - o.second) - (a.second - o.second) * (b.first - o.first);
}

// Monotone chain; throws std::invalid_argument for fewer than 3 points.
std::vector<Point> hull(std::vector<Point> pts)
{
    if (pts.size() < 3)
        throw std::invalid_argument("need at least 3 points, got " + std::to_string(pts.size()));
    std::sort(pts.begin(), pts.end());
    std::vector<Point> h(2 * pts.size());
    size_t k = 0;
    for (size_t i = 0; i < pts.size(); ++i) {
        while (k >= 2 && cross(h[k - 2], h[k - 1], pts[i]) <= 0)
            --k;
        h[k++] = pts[i];
    }
    for (size_t i = pts.size() - 1, t = k + 1; i > 0; --i) {
        while (k >= t && cross(h[k - 2], h[k - 1], pts[i - 1]) <= 0)
            --k;
        h[k++] = pts[i - 1];
    }
    h.resize(k - 1);
    return h;
}

double area(const std::vector<Point> &poly)
{
    double a = 0;
    for (size_t i = 0; i < poly.size(); ++i) {
        const Point &p = poly[i], &q = poly[(i + 1) % poly.size()];
        a += p.first * q.second - q.first * p.second;
    }
    return std::fabs(a) / 2;
}

bool to_points(PyObject *seq, std::vector<Point> &out)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of (x, y) pairs");
    if (fast == nullptr)
        return false;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n; ++i) {
        double x, y;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "dd", &x, &y)) {
            Py_DECREF(fast);
            return false;
        }
        out.emplace_back(x, y);
    }
    Py_DECREF(fast);
    return true;
}

// convex_hull_area(points) -> float; ValueError (from a C++ exception) for < 3 points.
PyObject *convex_hull_area(PyObject *, PyObject *arg)
{
    std::vector<Point> pts;
    if (!to_points(arg, pts))
        return nullptr;
    try {
        return PyFloat_FromDouble(area(hull(pts)));
    } catch (const std::invalid_argument &e) {
        PyErr_SetString(PyExc_ValueError, e.what());
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "unexpected C++ exception");
    }
    return nullptr;
}

// Polygon(points): a type whose instances own a std::vector.
struct PolygonObject {
    PyObject_HEAD
    std::vector<Point> *pts;
};

int Polygon_init(PyObject *self, PyObject *args, PyObject *)
{
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "O", &seq))
        return -1;
    auto *pts = new std::vector<Point>();
    if (!to_points(seq, *pts)) {
        delete pts;
        return -1;
    }
    auto *p = reinterpret_cast<PolygonObject *>(self);
    delete p->pts;
    p->pts = pts;
    return 0;
}

void Polygon_dealloc(PyObject *self)
{
    delete reinterpret_cast<PolygonObject *>(self)->pts;
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyObject *Polygon_area(PyObject *self, PyObject *)
{
    auto *p = reinterpret_cast<PolygonObject *>(self);
    return PyFloat_FromDouble(p->pts ? area(*p->pts) : 0.0);
}

PyObject *Polygon_len(PyObject *self, PyObject *)
{
    auto *p = reinterpret_cast<PolygonObject *>(self);
    return PyLong_FromSize_t(p->pts ? p->pts->size() : 0);
}

PyMethodDef polygon_methods[] = {
    {"area", Polygon_area, METH_NOARGS, "Area (shoelace formula)."},
    {"vertex_count", Polygon_len, METH_NOARGS, "Number of vertices."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot polygon_slots[] = {
    {Py_tp_init, reinterpret_cast<void *>(Polygon_init)},
    {Py_tp_dealloc, reinterpret_cast<void *>(Polygon_dealloc)},
    {Py_tp_methods, polygon_methods},
    {Py_tp_new, reinterpret_cast<void *>(PyType_GenericNew)},
    {0, nullptr},
};

PyType_Spec polygon_spec = {
    "skdemo._geometry.Polygon", sizeof(PolygonObject), 0, Py_TPFLAGS_DEFAULT, polygon_slots,
};

int exec_module(PyObject *m)
{
    PyObject *tp = PyType_FromModuleAndSpec(m, &polygon_spec, nullptr);
    if (tp == nullptr || PyModule_AddObject(m, "Polygon", tp) < 0) {
        Py_XDECREF(tp);
        return -1;
    }
    return PyModule_AddStringConstant(m, "units", g_units.c_str());
}

PyMethodDef methods[] = {
    {"convex_hull_area", convex_hull_area, METH_O, "Area of the convex hull of (x, y) points."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef_Slot slots[] = {
    {Py_mod_exec, reinterpret_cast<void *>(exec_module)},
    {0, nullptr},
};

PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "skdemo._geometry", "C++ geometry helpers of skdemo.", 0, methods,
    slots, nullptr, nullptr, nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__geometry(void)
{
    return PyModuleDef_Init(&module);
}
