/* cosmoext._runtime: the Python face of the loader.  create_module and
   exec_module do what CPython's _imp.create_dynamic / _imp.exec_dynamic do
   for a dlopen()ed extension (docs/runtime.md). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

#include "cxcodemem.h"
#include "cxcrc32c.h"
#include "cxcxx.h"
#include "cxexports.h"
#include "cxhost.h"
#include "cxload.h"
#include "cxpyclosure.h"
#include "cxtls_static.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#ifdef Py_DEBUG
#define CX_ABI_FLAGS "d"
#else
#define CX_ABI_FLAGS ""
#endif
#define CX_PYTHON_ABI "cp" STR(PY_MAJOR_VERSION) STR(PY_MINOR_VERSION) CX_ABI_FLAGS

#if defined(__COSMOPOLITAN__)
#define CX_TARGET "cosmo"
#elif defined(__linux__) && defined(__GLIBC__)
#define CX_TARGET "linux-gnu"
#elif defined(__linux__)
#define CX_TARGET "linux-musl"
#elif defined(__APPLE__)
#define CX_TARGET "darwin"
#else
#define CX_TARGET "unknown"
#endif


static const struct cx_host host = {CX_TARGET, CX_PYTHON_ABI, cx_resolve,
                                   cx_register_frames, CX_RESOLVE_CXX};
static struct cx_load_stats last_stats;
static uint64_t last_init_ns;

static PyObject *import_error(PyObject *name, PyObject *path, const char *fmt, ...) {
  char buf[CX_ERRLEN + 256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  PyObject *msg = PyUnicode_FromString(buf);
  if (msg) {
    PyErr_SetImportError(msg, name, path);
    Py_DECREF(msg);
  }
  return NULL;
}

static PyObject *create_module(PyObject *self, PyObject *spec) {
  (void)self;
  PyObject *name = NULL, *path = NULL, *pathb = NULL, *m = NULL;
  name = PyObject_GetAttrString(spec, "name");
  path = name ? PyObject_GetAttrString(spec, "origin") : NULL;
  if (!path) goto done;
  if (!PyUnicode_Check(name) || !PyUnicode_Check(path)) {
    PyErr_SetString(PyExc_TypeError, "spec.name and spec.origin must be str");
    goto done;
  }
  if (!PyUnicode_FSConverter(path, &pathb)) goto done;
  const char *cpath = PyBytes_AS_STRING(pathb);
  const char *fullname = PyUnicode_AsUTF8(name);
  if (!fullname) goto done;
  const char *dot = strrchr(fullname, '.');
  const char *shortname = dot ? dot + 1 : fullname;

  /* cx_load gives back the image of a file loaded already (the same handle,
     as dlopen does), found from the fstat of the file it opens. */
  struct cx_image *im;
  char err[CX_ERRLEN];
  struct cx_load_stats st; /* loads run in parallel without the GIL: published under it */
  Py_BEGIN_ALLOW_THREADS
  im = cx_load(cpath, shortname, &host, err, sizeof err, &st);
  Py_END_ALLOW_THREADS
  if (!st.reused) last_stats = st;
  if (!im) {
    import_error(name, path, "cannot load %s: %s", cpath, err);
    goto done;
  }
  if (strcmp(im->name, shortname) != 0) {
    import_error(name, path, "cannot load %s: it holds module '%s', not '%s'", cpath, im->name,
                 shortname);
    goto done;
  }
  PyObject *(*init)(void) = (PyObject * (*)(void)) im->entry;
  uint64_t t0 = 0;
  {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  }
  const char *oldctx = _Py_PackageContext;
  _Py_PackageContext = fullname;
  m = init();
  _Py_PackageContext = oldctx;
  {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    last_init_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - t0;
  }
  if (!m) {
    if (!PyErr_Occurred())
      PyErr_Format(PyExc_SystemError, "initialization of %s failed without raising an exception",
                   shortname);
    goto done;
  }
  if (PyErr_Occurred()) {
    Py_CLEAR(m);
    PyErr_Format(PyExc_SystemError, "initialization of %s raised unreported exception", shortname);
    goto done;
  }
  if (PyObject_TypeCheck(m, &PyModuleDef_Type)) {
    PyObject *mod = PyModule_FromDefAndSpec((PyModuleDef *)m, spec);
    m = mod; /* the def is static; no reference was owned */
    goto done;
  }
  PyModuleDef *def = PyModule_GetDef(m);
  if (!def) {
    PyErr_Clear();
    Py_CLEAR(m);
    PyErr_Format(PyExc_SystemError, "initialization of %s did not return an extension module",
                 shortname);
    goto done;
  }
  def->m_base.m_init = init;
  if (PyModule_AddObjectRef(m, "__file__", path) < 0) PyErr_Clear();
  PyObject *modules = PyImport_GetModuleDict();
  if (_PyImport_FixupExtensionObject(m, name, path, modules) < 0) Py_CLEAR(m);
done:
  Py_XDECREF(name);
  Py_XDECREF(path);
  Py_XDECREF(pathb);
  return m;
}

static PyObject *exec_module(PyObject *self, PyObject *mod) {
  (void)self;
  if (!PyModule_Check(mod)) Py_RETURN_NONE;
  PyModuleDef *def = PyModule_GetDef(mod);
  if (!def) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  if (PyModule_GetState(mod)) Py_RETURN_NONE; /* already executed */
  if (PyModule_ExecDef(mod, def) < 0) return NULL;
  Py_RETURN_NONE;
}

#ifdef CX_EMBEDDED
#define CX_MODE "embedded"
#else
#define CX_MODE "extension"
#endif

static PyObject *info(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return Py_BuildValue("{s:s,s:s,s:s,s:s,s:n,s:n,s:n}", "mode", CX_MODE, "target", CX_TARGET,
                       "python_abi",
                       CX_PYTHON_ABI, "machine", cx_machine_name(cx_machine()), "exports",
                       (Py_ssize_t)cx_export_count, "static_tls_reserve",
                       (Py_ssize_t)(cx_static_tls ? cx_static_tls->size : 0),
                       "static_tls_used", (Py_ssize_t)(cx_static_tls ? cx_static_tls->used : 0));
}

static PyObject *counters(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  struct cx_counters c;
  cx_get_counters(&c);
  return Py_BuildValue("{s:K,s:K,s:K,s:K}", "loaded", (unsigned long long)c.loaded, "failed",
                       (unsigned long long)c.failed, "live_bytes",
                       (unsigned long long)c.live_bytes, "live_regions",
                       (unsigned long long)c.live_regions);
}

static PyObject *load_stats(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "validate_ns",
                       (unsigned long long)last_stats.validate_ns, "map_ns",
                       (unsigned long long)last_stats.map_ns, "fixup_ns",
                       (unsigned long long)last_stats.fixup_ns, "init_array_ns",
                       (unsigned long long)last_stats.init_ns, "pyinit_ns",
                       (unsigned long long)last_init_ns, "fixups",
                       (unsigned long long)last_stats.fixups, "imports",
                       (unsigned long long)last_stats.imports);
}

static PyObject *images(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  PyObject *list = PyList_New(0);
  for (struct cx_image *im = cx_images(); list && im; im = im->next) {
    PyObject *d = Py_BuildValue("{s:s,s:s,s:K,s:n,s:I}", "path", im->path, "name", im->name,
                                "base", (unsigned long long)im->base, "vsize",
                                (Py_ssize_t)im->vsize, "flags", im->flags);
    if (!d || PyList_Append(list, d) < 0) Py_CLEAR(list);
    Py_XDECREF(d);
  }
  return list;
}

static PyObject *set_verify(PyObject *self, PyObject *arg) {
  (void)self;
  int old = cx_verify_digests;
  long v;
  if (PyBool_Check(arg)) {
    v = arg == Py_True ? 2 : 0; /* True: full image digests; False: none */
  } else {
    v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (v < 0 || v > 2) {
      PyErr_SetString(PyExc_ValueError, "verify level is 0 (none), 1 (CRC-32C) or 2 (SHA-256)");
      return NULL;
    }
  }
  cx_verify_digests = (int)v;
  return PyLong_FromLong(old);
}

/* crc32c(data, crc=0, software=False): the loader's CRC-32C of a buffer
   (cosmoext.format uses it to write files; tests compare it with Python's). */
static PyObject *crc32c_py(PyObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"data", "crc", "software", NULL};
  Py_buffer buf;
  unsigned int crc = 0;
  int software = 0;
  (void)self;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|Ip:crc32c", kwlist, &buf, &crc, &software))
    return NULL;
  uint32_t r;
  Py_BEGIN_ALLOW_THREADS
  r = software ? cx_crc32c_sw(crc, buf.buf, (size_t)buf.len)
               : cx_crc32c(crc, buf.buf, (size_t)buf.len);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&buf);
  return PyLong_FromUnsignedLong(r);
}

static PyObject *crc32c_impl_py(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyUnicode_FromString(cx_crc32c_impl());
}

static PyObject *resolve_py(PyObject *self, PyObject *arg) {
  (void)self;
  const char *name = PyUnicode_AsUTF8(arg);
  if (!name) return NULL;
  const void *a = cx_resolve(name, cx_gnu_hash_str(name));
  if (!a) Py_RETURN_NONE;
  return PyLong_FromVoidPtr((void *)a);
}

/* What an image built with cxx-runtime = shared gets for a C++ name (None
   if the name is not a C++ runtime name, or this interpreter has none). */
static PyObject *resolve_cxx_py(PyObject *self, PyObject *arg) {
  (void)self;
  const char *name = PyUnicode_AsUTF8(arg);
  if (!name) return NULL;
  const void *a = host.resolve_cxx && cx_cxx_name(name)
                      ? host.resolve_cxx(name, cx_gnu_hash_str(name)) : NULL;
  if (!a) Py_RETURN_NONE;
  return PyLong_FromVoidPtr((void *)a);
}

static PyObject *codemem(PyObject *self, PyObject *noargs) {
  (void)self;
  (void)noargs;
  return PyUnicode_FromString(cx_codemem_name());
}

static PyMethodDef methods[] = {
    {"create_module", create_module, METH_O, "Load the image named by spec.origin; run PyInit."},
    {"exec_module", exec_module, METH_O, "Execute a multi-phase module (PEP 489)."},
    {"info", info, METH_NOARGS, "Target, Python ABI, machine and export-table size."},
    {"counters", counters, METH_NOARGS, "Images loaded/failed and live mapped bytes."},
    {"load_stats", load_stats, METH_NOARGS, "Phase timings (ns) of the last load."},
    {"images", images, METH_NOARGS, "The loaded images."},
    {"set_verify", set_verify, METH_O,
     "Checks at load: 0 none, 1 CRC-32C of everything read (default), 2 also SHA-256; "
     "True=2, False=0. Returns the old level."},
    {"crc32c", (PyCFunction)(void (*)(void))crc32c_py, METH_VARARGS | METH_KEYWORDS,
     "crc32c(data, crc=0, software=False): CRC-32C of a buffer, continuing from crc."},
    {"crc32c_impl", crc32c_impl_py, METH_NOARGS,
     "Which CRC-32C the loader uses here: sse4.2, armv8-crc or table."},
    {"resolve", resolve_py, METH_O, "Address the export table gives for a name, or None."},
    {"resolve_cxx", resolve_cxx_py, METH_O,
     "Address the shared C++ runtime gives for a C++ name, or None."},
    {"closure_info", cx_closure_pool_info, METH_NOARGS, "The closure pool: capacity, use, place."},
    {"codemem", codemem, METH_NOARGS, "How code is written here: mprotect, map-jit or windows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "cosmoext._runtime",
    "The cosmoext loader: maps .cosmoext images without dlopen.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__runtime(void) {
  const char *v = getenv("COSMOEXT_VERIFY");
  if (v && *v) cx_verify_digests = strcmp(v, "0") == 0 ? 0 : 2; /* COSMOEXT_VERIFY=1: full */
  cx_exports_init();
#ifdef CX_STATIC_TLS_RESERVE
  cx_static_tls_init();
#endif
  PyObject *m = PyModule_Create(&moddef);
  if (m && cx_pyclosure_init(m) < 0) Py_CLEAR(m);
  return m;
}
