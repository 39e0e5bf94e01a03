/* cx_darwin.h: the few Darwin declarations the runtime's platform files use,
   for compiling them without Apple's SDK (on Linux, to check the macOS ARM64
   MAP_JIT path: clang --target=arm64-apple-macos11).  Written from Apple's
   documented interfaces: <sys/mman.h>, <pthread.h> (macOS 11+),
   <libkern/OSCacheControl.h>, <errno.h>, <unistd.h>, <stdlib.h>, <string.h>.
   Used only when the SDK headers are absent; a real macOS build uses the SDK. */
#ifndef CX_DARWIN_H
#define CX_DARWIN_H
#if !defined(__APPLE__)
#error "compat/cx_darwin.h is for Apple targets only"
#endif
#include <stddef.h> /* compiler-provided */
#include <stdint.h> /* compiler-provided */

typedef long long off_t;
typedef long ssize_t;

/* <sys/mman.h> */
#define PROT_NONE 0x00
#define PROT_READ 0x01
#define PROT_WRITE 0x02
#define PROT_EXEC 0x04
#define MAP_SHARED 0x0001
#define MAP_PRIVATE 0x0002
#define MAP_FIXED 0x0010
#define MAP_NORESERVE 0x0040
#define MAP_JIT 0x0800
#define MAP_ANON 0x1000
#define MAP_ANONYMOUS MAP_ANON
#define MAP_FAILED ((void *)-1)
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset);
int mprotect(void *addr, size_t len, int prot);
int munmap(void *addr, size_t len);

/* <pthread.h>, macOS 11.0+ */
int pthread_jit_write_protect_supported_np(void);
void pthread_jit_write_protect_np(int enabled);

/* <libkern/OSCacheControl.h> */
void sys_icache_invalidate(void *start, size_t len);

/* <errno.h> */
int *__error(void);
#define errno (*__error())
#define EINVAL 22

/* <string.h>, <unistd.h>, <stdlib.h> */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
size_t strlen(const char *s);
ssize_t write(int fd, const void *buf, size_t n);
void abort(void) __attribute__((noreturn));

#endif
