/* The Python face of the closure pool: cosmoext._runtime.closure. */
#ifndef CXPYCLOSURE_H
#define CXPYCLOSURE_H
#include <Python.h>

extern PyTypeObject cx_closure_type;
/* _runtime.closure_info(): the pool's capacity, use and location. */
PyObject *cx_closure_pool_info(PyObject *self, PyObject *noargs);
/* Adds the closure type to the module. */
int cx_pyclosure_init(PyObject *module);

#endif
