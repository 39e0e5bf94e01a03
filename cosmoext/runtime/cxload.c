/* cx_load: the order of a load (docs/runtime.md), the list of loaded
   images, and the loader's counters.  Any failure before .init_array
   unmaps the whole reservation. */
#define _GNU_SOURCE 1
#include "cxload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifndef MAP_POPULATE
#define MAP_POPULATE 0 /* not Linux: pages are faulted in as they are read */
#endif
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cxcodemem.h"
#include "cxcrc32c.h"
#include "cxfixup.h"
#include "cxformat.h"
#include "cxloadctx.h"
#include "cxplace.h"
#include "cxtls_dynamic.h"
#include "cxtls_static.h"
#include "cxvalidate.h"

static struct cx_image *g_images;
static struct cx_counters g_count;

/* One load at a time: module.c releases the GIL around cx_load, and the
   image list, the counters, dynamic TLS module ids and the static TLS
   watermark are all claimed by a load and given back if it fails.  Held
   until the image is published, not while its initialisers run.  fork()
   waits for a load in progress (pthread_atfork), so a child never inherits
   the lock held or an image half mapped. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static void lock_for_fork(void) { pthread_mutex_lock(&g_lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&g_lock); }

/* Once, when the runtime itself is loaded (as the dynamic linker sets itself
   up at start-up), not in the first import: the fork handlers (a
   pthread_once in cx_load cost that import a futex call), and the choice of
   CRC-32C code (cpuid, a VM exit of ~10 us under virtualisation). */
__attribute__((constructor)) static void cx_load_init(void) {
  pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
  (void)cx_crc32c_impl();
}

struct cx_image *cx_images(void) {
  return __atomic_load_n(&g_images, __ATOMIC_ACQUIRE);
}

void cx_get_counters(struct cx_counters *c) {
  pthread_mutex_lock(&g_lock);
  *c = g_count;
  pthread_mutex_unlock(&g_lock);
}

/* len bytes at offset off of the file, into buf (the loader's own memory:
   never a mapping of the file, where a truncation while in use would be
   SIGBUS).  A file shorter than fstat said (truncated meanwhile) is
   refused; bytes appended meanwhile are never read. */
static int read_at(struct cx_ctx *c, unsigned char *buf, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(c->fd, buf + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return cx_fail(c->err, c->errlen, "cannot read file: %s", strerror(errno));
    if (n == 0)
      return cx_fail(c->err, c->errlen, "file shrank from %zu to %llu bytes while being read",
                     c->file_size, (unsigned long long)(off + got));
    got += (size_t)n;
  }
  return 0;
}

#define CX_MAX_GAP 4096u /* bytes between pieces of an image read in place */

static uint64_t peek64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static uint32_t peek32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Can this image's segments be read straight into their place in the
   mapping (cx_read_in_place) instead of into a buffer and copied?  When its
   header and tables are all in the bytes read already, its segments lie
   after them in order with small gaps, it becomes one mapping, and its
   checksum is a CRC-32C.  Anything else takes the buffered path, whose
   validation gives the error if there is one.  Nothing here is trusted
   beyond these bounds: validation still checks every field. */
static int can_read_in_place(struct cx_ctx *c) {
  if (cx_verify_digests > 1 || !cx_codemem_one_map()) return 0;
  if (c->img_off + CX_IMAGE_HDR_SIZE > c->head_len) return 0;
  const unsigned char *h = c->head + c->img_off;
  uint64_t seg_off = peek32(h + 72), seg_n = peek32(h + 76), imp_off = peek32(h + 80),
           imp_n = peek32(h + 84), fix_off = peek32(h + 88), fix_n = peek32(h + 92),
           str_off = peek32(h + 96), str_size = peek32(h + 100);
  if (seg_n < 1 || seg_n > CX_MAX_SEGMENTS) return 0;
  uint64_t meta = seg_off + seg_n * CX_SEGMENT_SIZE;
  if (imp_off + imp_n * CX_IMPORT_SIZE > meta) meta = imp_off + imp_n * CX_IMPORT_SIZE;
  if (fix_off + fix_n * CX_FIXUP_SIZE > meta) meta = fix_off + fix_n * CX_FIXUP_SIZE;
  if (str_off + str_size > meta) meta = str_off + str_size;
  if (meta > c->img_size || c->img_off + meta > c->head_len) return 0;
  uint64_t at = meta;
  for (uint64_t i = 0; i < seg_n; i++) {
    const unsigned char *s = h + seg_off + i * CX_SEGMENT_SIZE;
    uint64_t off = peek64(s + 16), filesz = peek64(s + 24);
    if (!filesz) continue;
    if (off < at || off - at > CX_MAX_GAP || filesz > c->img_size - off) return 0;
    at = off + filesz;
  }
  if (c->img_size - at > CX_MAX_GAP) return 0;
  c->meta_len = (size_t)meta;
  return 1;
}

/* The file header and image table, then this machine's image: one read of
   the file's first CX_HEAD_MAX bytes, which holds the whole file when it is
   small, and a second read of the image only when it lies past them (a
   large image, or another machine's image first in a fat file).  A large
   image whose tables came with the first read has its segments read later,
   straight into the mapping (cx_read_in_place): no buffer, no copy, and
   half the pages touched. */
static int read_image(struct cx_ctx *c) {
  c->head_len = c->file_size < CX_HEAD_MAX ? c->file_size : CX_HEAD_MAX;
  if (!(c->head = malloc(c->head_len)))
    return cx_fail(c->err, c->errlen, "out of memory reading %zu bytes", c->head_len);
  if (read_at(c, c->head, c->head_len, 0) || cx_validate_file(c)) return -1;
  if (c->img_off + c->img_size <= c->head_len) {
    c->img = c->head + c->img_off;
  } else if (can_read_in_place(c)) {
    c->img = c->head + c->img_off; /* the tables only, until cx_read_in_place */
    c->in_place = 1;
    return 0;
  } else {
    /* populated in one go rather than a page fault per page as pread fills it */
    void *buf = mmap(NULL, (size_t)c->img_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED)
      return cx_fail(c->err, c->errlen, "out of memory reading %llu bytes",
                     (unsigned long long)c->img_size);
    c->img_buf = buf;
    if (read_at(c, c->img_buf, (size_t)c->img_size, c->img_off)) return -1;
    c->img = c->img_buf;
  }
  return cx_verify_image(c);
}

/* The segments of an in-place image, straight into the mapping, and the
   gaps between them into a scratch buffer, in one preadv; then the image's
   CRC-32C over the tables (read before) and these pieces in file order,
   before anything reads the segments. */
static int cx_read_in_place(struct cx_ctx *c) {
  struct iovec iov[2 * CX_MAX_SEGMENTS + 1];
  unsigned char *scratch = malloc((CX_MAX_SEGMENTS + 1) * (size_t)CX_MAX_GAP);
  int n = 0, rc = -1;
  uint64_t at = c->meta_len, total = 0;
  size_t used = 0;
  if (!scratch) return cx_fail(c->err, c->errlen, "out of memory");
  for (uint32_t i = 0; i <= c->h.seg_count; i++) {
    uint64_t off = i < c->h.seg_count ? c->seg[i].offset : c->img_size;
    uint64_t len = i < c->h.seg_count ? c->seg[i].filesz : 0;
    if (i < c->h.seg_count && !len) continue;
    if (off > at) { /* checked by can_read_in_place: at most CX_MAX_GAP */
      iov[n++] = (struct iovec){scratch + used, (size_t)(off - at)};
      used += (size_t)(off - at);
    }
    if (len) iov[n++] = (struct iovec){(void *)(c->base + (uintptr_t)c->seg[i].vaddr), (size_t)len};
    at = off + len;
  }
  for (int k = 0; k < n; k++) total += iov[k].iov_len;
  /* preadv, resumed after a short read */
  uint64_t got = 0;
  int first = 0;
  while (got < total) {
    ssize_t r = preadv(c->fd, iov + first, n - first, (off_t)(c->img_off + c->meta_len + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      cx_fail(c->err, c->errlen, "cannot read file: %s", strerror(errno));
      goto done;
    }
    if (r == 0) {
      cx_fail(c->err, c->errlen, "file shrank from %zu to %llu bytes while being read",
              c->file_size, (unsigned long long)(c->img_off + c->meta_len + got));
      goto done;
    }
    got += (uint64_t)r;
    for (uint64_t skip = (uint64_t)r; skip && first < n;) {
      if (skip >= iov[first].iov_len) {
        skip -= iov[first].iov_len;
        iov[first++].iov_len = 0;
      } else {
        iov[first].iov_base = (char *)iov[first].iov_base + skip;
        iov[first].iov_len -= (size_t)skip;
        skip = 0;
      }
    }
  }
  if (cx_verify_digests >= 1) {
    /* the iovecs were consumed: walk the same pieces again */
    uint32_t crc = cx_crc32c(0, c->img, c->meta_len);
    at = c->meta_len;
    used = 0;
    for (uint32_t i = 0; i <= c->h.seg_count; i++) {
      uint64_t off = i < c->h.seg_count ? c->seg[i].offset : c->img_size;
      uint64_t len = i < c->h.seg_count ? c->seg[i].filesz : 0;
      if (i < c->h.seg_count && !len) continue;
      if (off > at) {
        crc = cx_crc32c(crc, scratch + used, (size_t)(off - at));
        used += (size_t)(off - at);
      }
      if (len) crc = cx_crc32c(crc, (const void *)(c->base + (uintptr_t)c->seg[i].vaddr), (size_t)len);
      at = off + len;
    }
    if (crc != c->img_crc32c) {
      cx_fail(c->err, c->errlen, "%s image is corrupt (CRC-32C mismatch)",
              cx_machine_name(cx_machine()));
      goto done;
    }
  }
  rc = 0;
done:
  free(scratch);
  return rc;
}

/* An image already loaded from this file (dlopen returns the same handle
   for the same file; so do we): same device, inode, size and mtime. */
static struct cx_image *find_loaded(const struct stat *sb) {
  int64_t mtime = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
  for (struct cx_image *im = g_images; im; im = im->next)
    if (im->dev == (uint64_t)sb->st_dev && im->ino == (uint64_t)sb->st_ino &&
        im->size == (uint64_t)sb->st_size && im->mtime_ns == mtime)
      return im;
  return NULL;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}


struct cx_image *cx_load(const char *path, const char *want_name, const struct cx_host *host,
                         char *err, size_t errlen, struct cx_load_stats *st) {
  struct cx_ctx c;
  struct stat sb;
  struct cx_image *im = NULL;
  uint32_t req = 0;
  uint64_t t0 = now_ns(), t1, t2, t3;
  memset(&c, 0, sizeof c);
  memset(st, 0, sizeof *st);
  pthread_mutex_lock(&g_lock);
  c.path = path;
  c.want_name = want_name;
  c.err = err;
  c.errlen = errlen;
  c.host = host;
  c.fd = -1;
  long pg = sysconf(_SC_PAGESIZE);
  c.page = pg > 0 ? (size_t)pg : 4096;
  if (c.page > CX_ALIGN) {
    cx_fail(err, errlen, "page size %zu exceeds the format's 64 KiB alignment", c.page);
    goto out;
  }
  /* O_NONBLOCK: a FIFO or device must be refused below, not block the import. */
  c.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (c.fd < 0 || fstat(c.fd, &sb) != 0) {
    cx_fail(err, errlen, "%s", strerror(errno));
    goto out;
  }
  if (!S_ISREG(sb.st_mode) || sb.st_size <= 0 || (uint64_t)sb.st_size > (4ull << 30)) {
    cx_fail(err, errlen, "not a regular file of plausible size");
    goto out;
  }
  if ((im = find_loaded(&sb))) {
    close(c.fd);
    st->reused = 1;
    pthread_mutex_unlock(&g_lock);
    return im;
  }
  c.file_size = (size_t)sb.st_size;
  if (read_image(&c) || cx_validate_image(&c) || cx_validate_ranges(&c) ||
      cx_resolve_imports(&c) || cx_validate_fixups(&c, &req))
    goto out;
  t1 = now_ns();
  st->validate_ns = t1 - t0;
  im = calloc(1, sizeof *im);
  if (!im || !(im->path = strdup(path))) {
    cx_fail(err, errlen, "out of memory");
    goto out;
  }
  if (cx_static_tls_place(&c, req) || cx_reserve(&c, req) || cx_map_segments(&c) ||
      (c.in_place && cx_read_in_place(&c)))
    goto out;
  t2 = now_ns();
  st->map_ns = t2 - t1;
  if (c.h.tls_memsz && (req & CX_F_DYNAMIC_TLS)) {
    /* module ids are handed out before fixups so DTPMOD slots can hold them;
       the template pointer refers to mapped (relocated) memory. */
    c.tls_module = cx_tls_register((const void *)(c.base + (uintptr_t)c.h.tls_vaddr),
                                   c.h.tls_filesz, c.h.tls_memsz, c.h.tls_align);
    if (!c.tls_module) {
      cx_fail(err, errlen, "too many images with thread-local storage");
      goto out;
    }
  }
  if (cx_apply_fixups(&c) || cx_protect_segments(&c)) goto out;
  if ((req & CX_F_STATIC_TLS) && c.h.tls_filesz &&
      cx_static_tls_seed(c.tls_start, (const void *)(c.base + (uintptr_t)c.h.tls_vaddr),
                         c.h.tls_filesz, err, errlen) != 0)
    goto out;
  c.tls_seeded = (req & CX_F_STATIC_TLS) && c.h.tls_filesz;
  t3 = now_ns();
  st->fixup_ns = t3 - t2;
  st->fixups = c.h.fix_count;
  st->imports = c.h.imp_count;

  /* Success: publish the image, then run its initialisers. */
  memcpy(im->name, c.strtab + c.h.name_off, strlen(c.strtab + c.h.name_off) + 1);
  im->base = c.base;
  im->vsize = c.map_size;
  im->entry = c.base + (uintptr_t)c.h.entry;
  im->flags = c.h.flags;
  im->nseg = c.h.seg_count;
  for (uint32_t i = 0; i < c.h.seg_count; i++) {
    im->seg[i].start = c.base + (uintptr_t)c.seg[i].vaddr;
    im->seg[i].size = (size_t)c.seg[i].memsz;
    im->seg[i].prot = c.seg[i].prot;
  }
  im->ehhdr = c.h.ehhdr_size ? c.base + (uintptr_t)c.h.ehhdr_vaddr : 0;
  im->ehhdr_size = c.h.ehhdr_size;
  im->eh = c.h.eh_size ? c.base + (uintptr_t)c.h.eh_vaddr : 0;
  im->eh_size = (size_t)c.h.eh_size;
  im->fini = c.h.fini_count ? c.base + (uintptr_t)c.h.fini_vaddr : 0;
  im->fini_count = c.h.fini_count;
  im->tls_module = c.tls_module;
  im->dev = (uint64_t)sb.st_dev;
  im->ino = (uint64_t)sb.st_ino;
  im->size = (uint64_t)sb.st_size;
  im->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
  /* Initialisers must point into this image's code: check all before running any. */
  const uintptr_t *init = (const uintptr_t *)(c.base + (uintptr_t)c.h.init_vaddr);
  for (uint32_t i = 0; i < c.h.init_count; i++) {
    int ok = 0;
    for (uint32_t s = 0; s < c.h.seg_count; s++)
      if ((c.seg[s].prot & CX_PROT_X) && init[i] >= im->seg[s].start &&
          init[i] < im->seg[s].start + im->seg[s].size)
        ok = 1;
    if (!ok) {
      cx_fail(err, errlen, ".init_array entry %u does not point into the image's code", i);
      goto out;
    }
  }
  /* C++ exceptions: one unwinder (the interpreter's) for every image.  From
     here on the image is never unmapped. */
  if (im->eh && host->register_frames) host->register_frames((const void *)im->eh);
  im->next = g_images;
  __atomic_store_n(&g_images, im, __ATOMIC_RELEASE);
  g_count.loaded++;
  g_count.live_bytes += im->vsize;
  g_count.live_regions++;
  c.base = 0; /* owned by the image now */
  pthread_mutex_unlock(&g_lock); /* its initialisers run without the lock */
#ifndef CX_FUZZ /* fuzz/fuzz_load.c: never run (fuzzed) image code */
  for (uint32_t i = 0; i < c.h.init_count; i++)
    ((void (*)(int, char **, char **))init[i])(0, NULL, NULL);
#endif
  st->init_ns = now_ns() - t3;
  free(c.head);
  if (c.img_buf) munmap(c.img_buf, (size_t)c.img_size);
  close(c.fd);
  free(c.imp_addr);
  return im;

out:
  g_count.failed++;
  if (c.tls_module) cx_tls_unregister(c.tls_module);
  if (c.tls_tpoff && !c.tls_seeded) cx_static_tls->used = c.tls_used_before;
  cx_unmap_all(&c);
  free(c.head);
  if (c.img_buf) munmap(c.img_buf, (size_t)c.img_size);
  if (c.fd >= 0) close(c.fd);
  free(c.imp_addr);
  if (im) free(im->path);
  free(im);
  pthread_mutex_unlock(&g_lock);
  return NULL;
}
