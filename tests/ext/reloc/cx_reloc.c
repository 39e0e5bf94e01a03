/* Exercises the x86_64 relocation types the linker must handle.  Built in
   several code models by tests/test_relocs.py; every function checks its
   own result so a wrong relocation shows up as a wrong answer. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

int cx_counter = 40;                 /* global data */
static const char *const words[] = {"alpha", "beta", "gamma"}; /* pointers to rodata */
static long add(long a, long b) { return a + b; }
static long mul(long a, long b) { return a * b; }
long (*const ops[])(long, long) = {add, mul}; /* function pointers in relro */
__thread long tls_global = 5;        /* initialised TLS, visible */
static __thread long tls_local;      /* zero TLS, local */
__thread long tls_other;             /* zero TLS, visible */

#if defined(__x86_64__)
/* PC64: a 64-bit self-relative offset in data. */
__asm__(".pushsection .data.rel.ro.cx_pc64,\"aw\"\n"
        ".balign 8\n"
        ".globl cx_pc64_slot\n"
        "cx_pc64_slot: .quad cx_counter - .\n"
        ".popsection\n");
extern const int64_t cx_pc64_slot;
/* GOTPC32 + GOTOFF64: GOT base, then a GOT-relative offset to a symbol. */
__asm__(".text\n"
        ".globl cx_gotoff_addr\n"
        ".type cx_gotoff_addr,@function\n"
        "cx_gotoff_addr:\n"
        "  leaq _GLOBAL_OFFSET_TABLE_(%rip), %rax\n"
        "  movabsq $cx_counter@GOTOFF, %rdx\n"
        "  addq %rdx, %rax\n"
        "  ret\n");
void *cx_gotoff_addr(void);
/* DTPOFF64: module-relative offsets of two TLS variables. */
__asm__(".pushsection .rodata.cx_dtpoff,\"a\"\n"
        ".balign 8\n"
        ".globl cx_dtpoff64\n"
        "cx_dtpoff64: .quad tls_global@dtpoff, tls_other@dtpoff\n"
        ".popsection\n");
extern const int64_t cx_dtpoff64[2];
#endif

static PyObject *check(PyObject *self, PyObject *noargs) {
  (void)self; (void)noargs;
  long tl = ++tls_local;
  tls_global += 1;
  PyObject *none = Py_None; /* host data */
  int ok = cx_counter == 40 && ops[0](2, 3) == 5 && ops[1](2, 3) == 6 &&
           words[2][0] == 'g' && none == Py_None;
#if defined(__x86_64__)
  ok = ok && (const char *)&cx_pc64_slot + cx_pc64_slot == (const char *)&cx_counter;
  ok = ok && cx_gotoff_addr() == (void *)&cx_counter;
  /* both variables sit in the same per-thread block */
  ok = ok && (char *)&tls_global - cx_dtpoff64[0] == (char *)&tls_other - cx_dtpoff64[1];
#endif
  return Py_BuildValue("(Oll)", ok ? Py_True : Py_False, tl, tls_global);
}

static PyMethodDef methods[] = {{"check", check, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cx_reloc", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_cx_reloc(void) { return PyModule_Create(&def); }
