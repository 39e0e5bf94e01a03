/* Names of the C++ runtime, which images built with cxx-runtime = shared
   import from the interpreter's shared one (cx_host.resolve_cxx). */
#ifndef CXCXX_H
#define CXCXX_H

/* Mangled C++, or an Itanium C++ ABI entry point. */
static inline int cx_cxx_name(const char *n) {
  return (n[0] == '_' && n[1] == 'Z') || __builtin_strncmp(n, "__cxa_", 6) == 0 ||
         __builtin_strncmp(n, "__gxx_", 6) == 0 || __builtin_strcmp(n, "__dynamic_cast") == 0;
}

#endif
