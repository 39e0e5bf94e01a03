/* cosmoext.h: what the cosmoext runtime offers C code inside .cosmoext images.

   Closures without code generation.  A closure is an ordinary C function
   pointer bound to a handler and a void * of user data, for C APIs that take
   a bare callback (qsort, atexit-style registries, event loops) and have no
   user-data argument.  They come from a fixed pool of identical precompiled
   stubs in the runtime's own read-only text; creating one only writes two
   pointers into a static read-write table, so no page is ever made
   writable and executable: what strict W^X (macOS ARM64, a seccomp filter)
   requires.  (Run on Linux x86_64, and aarch64 under qemu; compiled, not
   run, for macOS.)

   Calling convention.  A closure forwards every argument register and every
   stack argument unchanged and tail-jumps to the handler, so the handler is
   an ordinary C function with exactly the prototype the closure is called
   with (any prototype: any number of arguments, floating point, variadic,
   struct returns).  Before the jump it records the closure's user data in a
   thread-local variable:

       static int compare(const void *a, const void *b) {
         struct ctx *ctx = cosmoext_closure_userdata();   // read it first
         ...
       }
       int (*cmp)(const void *, const void *) =
           (int (*)(const void *, const void *))cosmoext_closure_new((void *)compare, &ctx);
       qsort(items, n, size, cmp);
       cosmoext_closure_free((void *)cmp);

   cosmoext_closure_userdata() returns the user data of the closure most
   recently entered on the calling thread: read it at the top of the handler,
   before the handler calls any other closure.  Every argument register
   reaches the handler unchanged; registers that carry no arguments in the C
   ABI may not (x86_64: r10, r11, xmm8-15; aarch64: x9-x17), so a handler
   cannot receive a static chain.  x18 and x28 are never touched.

   Limits.  The pool holds COSMOEXT_CLOSURE_POOL closures at once (16384 in
   the standard runtime; freed closures are reused).  cosmoext_closure_new
   returns NULL when the pool is empty or handler is NULL.  All three
   functions are thread-safe and lock-free.
   cosmoext_closure_free ignores pointers that are not live closures (so a
   double free is harmless); calling a freed closure aborts the process with
   a message.

   In a .cosmoext image these names are resolved from the runtime's export
   table, like the Python C API; nothing else needs linking. */
#ifndef COSMOEXT_H
#define COSMOEXT_H

#ifdef __cplusplus
extern "C" {
#endif

#define COSMOEXT_CLOSURE_API 1
#define COSMOEXT_CLOSURE_POOL 16384

/* A C function pointer that calls handler; NULL if the pool is empty or
   handler is NULL.  handler is any function pointer, cast to void *. */
void *cosmoext_closure_new(void *handler, void *userdata);

/* Return a closure to the pool.  Anything else, and a second free, is ignored. */
void cosmoext_closure_free(void *fn);

/* The user data of the closure this thread entered last (NULL if none). */
void *cosmoext_closure_userdata(void);

#ifdef __cplusplus
}
#endif
#endif
