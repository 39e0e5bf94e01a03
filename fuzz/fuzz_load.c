/* libFuzzer harness for the loader: cx_load() and everything it calls
   (validation, placement, mapping, fixups, TLS registration), built with
   -fsanitize=fuzzer,address,undefined by fuzz/build.sh (or tests/test_fuzz.py).

   - The input is a .cosmoext file.  It is written to a memfd and loaded
     through /proc/self/fd/N, so the loader's open/fstat/mmap path is the real one.
   - Image code never runs: cxload.c is compiled with -DCX_FUZZ, which skips
     the .init_array calls (the only place the loader runs image code).
   - Imports resolve to addresses inside a static array of this program (so
     non-PIC images' near-host placement is exercised), except the names
     that are conventionally weak (_ITM_*, __gmon_start__), which are absent.
   - Digests: CX_FUZZ_DIGESTS (default 0) sets cx_verify_digests; with 0 the
     fuzzer reaches every stage after the metadata digest.
   - Machine: the machine of the file's first image, if x86_64 or aarch64
     (cx_machine() is this file's, see build.sh), so aarch64 images'
     fixups are applied on x86_64 too (no image code ever runs).
   - Target and Python ABI: the host takes the image's own, when it looks
     like one, so cosmocc images ("cosmo") get past the header check.
   - Every successful load is undone (unmapped, TLS module released, taken
     off the image list) so the process does not grow: this file includes
     cxload.c and cxtls_dynamic.c to reach their statics.
   Invariants checked (abort on violation): a failure writes a one-line
   reason; a failure leaves the counters of live regions unchanged; a
   success lies inside its reservation. */
#define _GNU_SOURCE 1
#include "cxload.c"
#include "cxtls_dynamic.c"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* cxbase.c's own cx_machine is renamed cx_machine_native by the build. */
unsigned cx_machine_native(void);
static unsigned g_machine;
unsigned cx_machine(void) { return g_machine ? g_machine : cx_machine_native(); }

static unsigned char g_sink[1 << 16] __attribute__((aligned(64)));

static const void *fuzz_resolve(const char *name, uint32_t hash) {
  if (!strncmp(name, "_ITM_", 5) || !strcmp(name, "__gmon_start__")) return NULL;
  return g_sink + (hash % (sizeof g_sink / 16)) * 16;
}

static void fuzz_register_frames(const void *eh) { (void)eh; }

static int g_fd = -1;
static int g_verbose; /* CX_FUZZ_VERBOSE=1: print each load's outcome */
static char g_path[64];

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* The first image's entry offset (0 if the file is too short for one). */
static uint64_t first_image(const uint8_t *d, size_t n, unsigned *machine) {
  *machine = 0;
  if (n < CX_FILE_HDR_SIZE) return 0;
  uint64_t table = rd64(d + 32);
  if (table > n || n - table < CX_IMAGE_ENT_SIZE) return 0;
  *machine = rd16(d + table);
  uint64_t off = rd64(d + table + 8);
  return off < n && n - off >= CX_IMAGE_HDR_SIZE ? off : 0;
}

/* The image's own string if it starts with one of the prefixes, else dflt. */
static void pick_str(char *dst, const uint8_t *field, const char *const *prefixes,
                     const char *dflt) {
  snprintf(dst, 16, "%s", dflt);
  if (!field || !memchr(field, 0, 16)) return;
  for (; *prefixes; prefixes++)
    if (!strncmp((const char *)field, *prefixes, strlen(*prefixes))) memcpy(dst, field, 16);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *dg = getenv("CX_FUZZ_DIGESTS");
  cx_verify_digests = dg ? atoi(dg) : 0;
  g_verbose = getenv("CX_FUZZ_VERBOSE") != NULL;
  g_fd = memfd_create("cx-fuzz", MFD_CLOEXEC);
  if (g_fd < 0) {
    perror("memfd_create");
    abort();
  }
  snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
  return 0;
}

/* Undo a successful load (images otherwise stay for the process lifetime). */
static void unload(struct cx_image *im) {
  pthread_mutex_lock(&g_lock);
  if (g_images != im) abort(); /* the newest image is first */
  g_images = im->next;
  g_count.loaded--;
  g_count.live_bytes -= im->vsize;
  g_count.live_regions--;
  if (im->tls_module) cx_tls_unregister(im->tls_module);
  munmap((void *)im->base, im->vsize);
  free(im->path);
  free(im);
  pthread_mutex_unlock(&g_lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (ftruncate(g_fd, 0) != 0 || ftruncate(g_fd, (off_t)size) != 0 ||
      pwrite(g_fd, data, size, 0) != (ssize_t)size) {
    perror("memfd write");
    abort();
  }
  unsigned machine;
  uint64_t off = first_image(data, size, &machine);
  g_machine = machine == CX_EM_X86_64 || machine == CX_EM_AARCH64 ? machine : 0;
  char target[16], abi[16];
  static const char *const targets[] = {"linux", "cosmo", NULL}, *const abis[] = {"cp3", NULL};
  pick_str(target, off ? data + off + 16 : NULL, targets, "linux-gnu");
  pick_str(abi, off ? data + off + 32 : NULL, abis, "cp311");
  struct cx_host host = {target, abi, fuzz_resolve, fuzz_register_frames, NULL};
  /* Sometimes ask for a module by name (the "holds module X, not Y" path). */
  const char *want = size % 7 == 3 ? "cx_state" : NULL;

  struct cx_counters before, after;
  cx_get_counters(&before);
  char err[CX_ERRLEN];
  memset(err, 0, sizeof err);
  struct cx_load_stats st;
  struct cx_image *im = cx_load(g_path, want, &host, err, sizeof err, &st);
  /* cx_load's lock must be free again when it returns (else the next import
     deadlocks).  CX_FUZZ_LOCK_WORKAROUND: report once, release, go on. */
  if (pthread_mutex_trylock(&g_lock) == 0) {
    pthread_mutex_unlock(&g_lock);
  } else {
#ifdef CX_FUZZ_LOCK_WORKAROUND
    static int said;
    if (!said++) fprintf(stderr, "BUG: cx_load returned with its lock held (%s)\n", im ? "success" : err);
    pthread_mutex_unlock(&g_lock);
#else
    fprintf(stderr, "cx_load returned with its lock held (%s)\n", im ? "after a success" : err);
    abort();
#endif
  }
  cx_get_counters(&after);
  if (g_verbose) fprintf(stderr, "cx_load: %s\n", im ? "loaded" : err);
  if (!im) {
    size_t n = strnlen(err, sizeof err);
    if (n == 0 || n == sizeof err || memchr(err, '\n', n)) {
      fprintf(stderr, "failed load without a one-line reason: '%.*s'\n", (int)n, err);
      abort();
    }
    if (after.live_regions != before.live_regions || after.live_bytes != before.live_bytes ||
        after.failed != before.failed + 1) {
      fprintf(stderr, "failed load changed the live counters: %s\n", err);
      abort();
    }
  } else {
    if (!im->base || im->entry < im->base || im->entry >= im->base + im->vsize ||
        im->nseg == 0 || im->nseg > 8) {
      fprintf(stderr, "inconsistent image record\n");
      abort();
    }
    for (unsigned i = 0; i < im->nseg; i++)
      if (im->seg[i].start < im->base || im->seg[i].size > im->vsize ||
          im->seg[i].start - im->base > im->vsize - im->seg[i].size) {
        fprintf(stderr, "segment %u outside the reservation\n", i);
        abort();
      }
    unload(im);
  }
  /* Every module id was released: start over, so ids never run out. */
  g_nmods = 0;
  memset(g_mods, 0, sizeof g_mods);
  return 0;
}

/* Mutate mostly the metadata: the file header and image table, and each
   image's header and tables (segments, imports, fixups, strings).  Code and
   padding make up most of an image and are worth little to the loader. */
size_t LLVMFuzzerCustomMutator(uint8_t *d, size_t size, size_t max_size, unsigned int seed) {
  uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
#define NEXT() (r ^= r << 13, r ^= r >> 7, r ^= r << 17, r)
  if (size >= CX_FILE_HDR_SIZE && NEXT() % 10 < 8) {
    struct { uint64_t lo, hi; } rg[1 + 2 * CX_MAX_IMAGES];
    unsigned n = 0;
    uint64_t table = rd64(d + 32);
    uint32_t count = rd32(d + 16);
    if (count > CX_MAX_IMAGES) count = CX_MAX_IMAGES;
    rg[n].lo = 0;
    rg[n++].hi = CX_FILE_HDR_SIZE;
    if (table <= size && (size - table) / CX_IMAGE_ENT_SIZE >= count && count) {
      rg[n].lo = table;
      rg[n++].hi = table + (uint64_t)count * CX_IMAGE_ENT_SIZE;
      for (uint32_t i = 0; i < count; i++) {
        uint64_t off = rd64(d + table + i * CX_IMAGE_ENT_SIZE + 8);
        if (off >= size || size - off < CX_IMAGE_HDR_SIZE) continue;
        const uint8_t *h = d + off;
        uint64_t end = CX_IMAGE_HDR_SIZE, e;
        if ((e = (uint64_t)rd32(h + 72) + (uint64_t)rd32(h + 76) * CX_SEGMENT_SIZE) > end) end = e;
        if ((e = (uint64_t)rd32(h + 80) + (uint64_t)rd32(h + 84) * CX_IMPORT_SIZE) > end) end = e;
        if ((e = (uint64_t)rd32(h + 88) + (uint64_t)rd32(h + 92) * CX_FIXUP_SIZE) > end) end = e;
        if ((e = (uint64_t)rd32(h + 96) + (uint64_t)rd32(h + 100)) > end) end = e;
        if (end > size - off) end = size - off;
        rg[n].lo = off;
        rg[n++].hi = off + (NEXT() & 1 ? CX_IMAGE_HDR_SIZE : end);
      }
    }
    unsigned k = (unsigned)(NEXT() % n);
    uint64_t len = rg[k].hi - rg[k].lo, win = len > 512 ? 512 : len;
    uint64_t at = rg[k].lo + (len > win ? NEXT() % (len - win + 1) : 0);
    if (NEXT() % 3 == 0) { /* a whole 4- or 8-byte field: small, large or boundary values */
      static const uint64_t vals[] = {0, 1, 2, 7, 8, 0xff, 0x1000, 0xffff, 0x10000, 0x10001,
                                      0x7fffffff, 0x80000000, 0xffffffff, 0x100000000ull,
                                      0x7fffffffffffffffull, 0xffffffffffffffffull};
      unsigned w = NEXT() & 1 ? 8 : 4;
      uint64_t pos = at + (NEXT() % win) / w * w;
      if (pos + w <= size) {
        uint64_t v = vals[NEXT() % (sizeof vals / sizeof *vals)];
        if (NEXT() & 1) v += (int64_t)(NEXT() % 64) - 32;
        memcpy(d + pos, &v, w);
      }
    } else {
      LLVMFuzzerMutate(d + at, (size_t)win, (size_t)win);
    }
    return size;
  }
  size_t m = LLVMFuzzerMutate(d, size, max_size);
  if (m >= CX_FILE_HDR_SIZE && NEXT() & 1) { /* keep the header's file size true */
    uint64_t fs = m;
    memcpy(d + 24, &fs, 8);
  }
  return m;
#undef NEXT
}
