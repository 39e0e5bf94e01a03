/* main() of an interpreter made by `cosmoext embed`: a static CPython with
   the cosmoext loader built in as the builtin module cosmoext._runtime.

   At start-up, before running the user's program, it puts the cosmoext
   package (a zip appended to this executable) on sys.path and installs the
   .cosmoext finder with dynamic loading switched off: no .so is ever
   dlopen()ed (libpython's dlopen calls are wrapped to refuse). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <stdlib.h>

PyMODINIT_FUNC PyInit__runtime(void);
#ifdef CX_ADD_CONTEXTVARS
PyMODINIT_FUNC PyInit__cosmoext_contextvars(void);
#endif

/* libpython's dynload_shlib.c is the only dlopen caller we link; the
   linker's --wrap=dlopen sends it here. */
void *__wrap_dlopen(const char *file, int mode) {
  (void)mode;
  fprintf(stderr, "cosmoext: refused dlopen(%s): this interpreter loads .cosmoext files only\n",
          file ? file : "NULL");
  return NULL;
}

/* Runs before site and before the user's code.  CPython 3.11 cannot import
   a builtin submodule, so the runtime is the builtin _cosmoext_runtime and
   is aliased as cosmoext._runtime here. */
#ifdef CX_HOME
/* The package is in the stdlib folder of the executable's /zip. */
#define CX_PACKAGE_PATH ""
#else
/* The package is a zip appended to the executable. */
#define CX_PACKAGE_PATH "sys.path.insert(0, sys.executable)\n"
#endif
static const char boot[] =
    "import sys, _cosmoext_runtime\n"
    CX_PACKAGE_PATH
    "import cosmoext\n"
    "sys.modules['cosmoext._runtime'] = cosmoext._runtime = _cosmoext_runtime\n"
    "import cosmoext._hook\n"
    "cosmoext._hook.install(allow_dlopen=False)\n"
    "del _cosmoext_runtime\n";
static const char run_site[] = "import site\nsite.main()\n";

int main(int argc, char **argv) {
  if (PyImport_AppendInittab("_cosmoext_runtime", PyInit__runtime) < 0) return 120;
#ifdef CX_ADD_CONTEXTVARS
  if (PyImport_AppendInittab("_contextvars", PyInit__cosmoext_contextvars) < 0) return 120;
#endif
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  PyStatus st = PyConfig_SetBytesArgv(&config, argc, argv);
#ifdef CX_HOME
  /* The stdlib is in the executable's own zip: a fixed home stops getpath
     from probing the build's prefix (PYTHONHOME still wins). */
  if (!PyStatus_Exception(st) && !getenv("PYTHONHOME"))
    st = PyConfig_SetString(&config, &config.home, L"" CX_HOME);
#endif
#ifdef CX_STDLIB
  if (!PyStatus_Exception(st)) {
    config.module_search_paths_set = 1;
    st = PyWideStringList_Append(&config.module_search_paths, L"" CX_STDLIB);
  }
#endif
  if (!PyStatus_Exception(st)) st = PyConfig_Read(&config);
  if (PyStatus_Exception(st)) goto fail;
  /* site (and the .pth files it runs) comes after the finder is installed,
     so nothing at start-up can reach for a .so. */
  int want_site = config.site_import;
  config.site_import = 0;
  st = Py_InitializeFromConfig(&config);
  if (PyStatus_Exception(st)) goto fail;
  PyConfig_Clear(&config);
  if (PyRun_SimpleString(boot) != 0 || (want_site && PyRun_SimpleString(run_site) != 0)) {
    fprintf(stderr, "cosmoext: the embedded .cosmoext finder failed to start\n");
    return 120;
  }
  return Py_RunMain();
fail:
  PyConfig_Clear(&config);
  Py_ExitStatusException(st);
}
