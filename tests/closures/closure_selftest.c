/* Stand-alone test of the closure pool (cosmoext/runtime/cxclosure.c),
   without Python: compiled natively (x86_64) and with aarch64-linux-gnu-gcc
   (run under qemu-aarch64) by tests/test_closure_stubs.py.

   It checks what the stubs must preserve: integer and floating-point
   argument registers, stack arguments, the indirect-result register (large
   struct returns), variadic calls, user data per closure, nesting, reuse,
   double frees, the pool's capacity, and 8 threads allocating, calling and
   freeing while a shared closure is being called ("calls in flight").
   Prints "closure selftest: N checks passed" and exits 0, or names the first
   failure and exits 1. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cosmoext.h"

static long checks;
#define CHECK(cond)                                                          \
  do {                                                                       \
    checks++;                                                                \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

static int add_ud(int x) { return x + (int)(intptr_t)cosmoext_closure_userdata(); }

static long wide_sum(long a, long b, long c, long d, long e, long f, long g, long h, long i,
                     long j, double da, double db, double dc, double dd, double de, double df,
                     double dg, double dh, double di, double dj) {
  return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i + 10 * j +
         (long)(da + 2 * db + 3 * dc + 4 * dd + 5 * de + 6 * df + 7 * dg + 8 * dh + 9 * di +
                10 * dj);
}

/* 10 integer and 10 double arguments: 4 + 2 of them travel on the stack */
static long wide(long a, long b, long c, long d, long e, long f, long g, long h, long i, long j,
                 double da, double db, double dc, double dd, double de, double df, double dg,
                 double dh, double di, double dj) {
  long k = (long)(intptr_t)cosmoext_closure_userdata();
  return k + wide_sum(a, b, c, d, e, f, g, h, i, j, da, db, dc, dd, de, df, dg, dh, di, dj);
}

struct big {
  long v[6];
};

static struct big make_big(long x, double y) {
  long k = (long)(intptr_t)cosmoext_closure_userdata();
  struct big b;
  for (int i = 0; i < 6; i++) b.v[i] = k + x * i + (long)y;
  return b;
}

static int vsum(int n, ...) {
  int k = (int)(intptr_t)cosmoext_closure_userdata();
  va_list ap;
  va_start(ap, n);
  double s = 0;
  for (int i = 0; i < n; i++) s += (i & 1) ? va_arg(ap, double) : (double)va_arg(ap, int);
  va_end(ap);
  return k + (int)s;
}

static float mixf(float a, int b, double c, float d) {
  float k = (float)(intptr_t)cosmoext_closure_userdata();
  return k + a * (float)b + (float)c + d;
}

/* nesting: the outer handler reads its user data, then calls an inner closure */
static int (*g_inner)(int);
static int outer(int x) {
  int k = (int)(intptr_t)cosmoext_closure_userdata();
  int r = g_inner(x);
  return r * 1000 + k;
}

static int cmp_dir(const void *a, const void *b) {
  int dir = (int)(intptr_t)cosmoext_closure_userdata();
  int x = *(const int *)a, y = *(const int *)b;
  return dir * ((x > y) - (x < y));
}

/* ---- threads ---- */
static int (*g_shared)(int);
static long shared_calls;
static int shared_handler(int x) {
  __atomic_add_fetch(&shared_calls, 1, __ATOMIC_RELAXED);
  return x ^ (int)(intptr_t)cosmoext_closure_userdata();
}

struct job {
  int id, iters, errors;
};

static void *worker(void *arg) {
  struct job *j = arg;
  enum { WINDOW = 16 };
  int (*live[WINDOW])(int) = {0};
  int key[WINDOW] = {0};
  for (int n = 0; n < j->iters; n++) {
    int w = n % WINDOW;
    if (live[w]) { /* call the old one before freeing it, then reuse the spot */
      if (live[w](n) != n + key[w]) j->errors++;
      cosmoext_closure_free((void *)live[w]);
    }
    key[w] = j->id * 1000003 + n;
    live[w] = (int (*)(int))cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)key[w]);
    if (!live[w]) {
      j->errors++;
      continue;
    }
    if (live[w](7) != 7 + key[w]) j->errors++;
    if (g_shared(n) != (n ^ 0x5a5a)) j->errors++; /* the shared closure, in flight */
  }
  for (int w = 0; w < WINDOW; w++)
    if (live[w]) cosmoext_closure_free((void *)live[w]);
  return NULL;
}

int main(void) {
  /* basic: user data per closure, many at once */
  enum { N = 1000 };
  static int (*fs[N])(int);
  for (int i = 0; i < N; i++) {
    fs[i] = (int (*)(int))cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)(i * 3));
    CHECK(fs[i] != NULL);
  }
  for (int i = 0; i < N; i++) CHECK(fs[i](i) == i + i * 3);
  for (int i = 0; i < N; i++) cosmoext_closure_free((void *)fs[i]);

  /* all argument registers and stack arguments */
  long (*w)(long, long, long, long, long, long, long, long, long, long, double, double, double,
            double, double, double, double, double, double, double) =
      (long (*)(long, long, long, long, long, long, long, long, long, long, double, double,
                double, double, double, double, double, double, double, double))
          cosmoext_closure_new((void *)wide, (void *)(intptr_t)100000);
  CHECK(w != NULL);
  CHECK(w(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10.5) ==
        100000 + wide_sum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1.5, 2, 3, 4, 5, 6, 7, 8, 9, 10.5));
  cosmoext_closure_free((void *)w);

  /* indirect result (struct returned through memory) */
  struct big (*mb)(long, double) =
      (struct big (*)(long, double))cosmoext_closure_new((void *)make_big, (void *)(intptr_t)7);
  struct big b = mb(10, 0.5);
  for (int i = 0; i < 6; i++) CHECK(b.v[i] == 7 + 10 * i);
  cosmoext_closure_free((void *)mb);

  /* variadic */
  int (*vs)(int, ...) = (int (*)(int, ...))cosmoext_closure_new((void *)vsum, (void *)(intptr_t)5);
  CHECK(vs(4, 1, 2.5, 3, 4.5) == 5 + 11);
  cosmoext_closure_free((void *)vs);

  /* float/int/double mix */
  float (*mf)(float, int, double, float) =
      (float (*)(float, int, double, float))cosmoext_closure_new((void *)mixf, (void *)(intptr_t)2);
  CHECK(mf(1.5f, 4, 0.25, 0.25f) == 2 + 6.0f + 0.25f + 0.25f);
  cosmoext_closure_free((void *)mf);

  /* nesting */
  g_inner = (int (*)(int))cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)40);
  int (*o)(int) = (int (*)(int))cosmoext_closure_new((void *)outer, (void *)(intptr_t)9);
  CHECK(o(2) == 42 * 1000 + 9);
  cosmoext_closure_free((void *)o);
  cosmoext_closure_free((void *)g_inner);

  /* qsort, both directions */
  int v[64];
  for (int dir = -1; dir <= 1; dir += 2) {
    for (int i = 0; i < 64; i++) v[i] = (i * 37) % 64;
    int (*cmp)(const void *, const void *) = (int (*)(const void *, const void *))
        cosmoext_closure_new((void *)cmp_dir, (void *)(intptr_t)dir);
    qsort(v, 64, sizeof v[0], cmp);
    cosmoext_closure_free((void *)cmp);
    for (int i = 1; i < 64; i++) CHECK(dir > 0 ? v[i - 1] < v[i] : v[i - 1] > v[i]);
  }

  /* reuse, double free, foreign pointers */
  void *a = cosmoext_closure_new((void *)add_ud, (void *)1);
  cosmoext_closure_free(a);
  cosmoext_closure_free(a); /* ignored */
  cosmoext_closure_free((void *)main);
  cosmoext_closure_free(NULL);
  cosmoext_closure_free((char *)a + 1);
  void *b1 = cosmoext_closure_new((void *)add_ud, (void *)2);
  void *b2 = cosmoext_closure_new((void *)add_ud, (void *)3);
  CHECK(b1 == a && b2 != a); /* the freed one comes back first, and only once */
  cosmoext_closure_free(b1);
  cosmoext_closure_free(b2);
  CHECK(cosmoext_closure_new(NULL, NULL) == NULL);

  /* capacity: exactly COSMOEXT_CLOSURE_POOL at once */
  static void *all[COSMOEXT_CLOSURE_POOL];
  int got = 0;
  for (; got < COSMOEXT_CLOSURE_POOL; got++)
    if (!(all[got] = cosmoext_closure_new((void *)add_ud, (void *)(intptr_t)got))) break;
  CHECK(got == COSMOEXT_CLOSURE_POOL);
  CHECK(cosmoext_closure_new((void *)add_ud, NULL) == NULL);
  for (int i = 0; i < got; i += 997) CHECK(((int (*)(int))all[i])(1) == 1 + i);
  for (int i = 0; i < got; i++) cosmoext_closure_free(all[i]);

  /* threads: 8 x 12500 = 100,000 closures made, called and freed */
  g_shared = (int (*)(int))cosmoext_closure_new((void *)shared_handler, (void *)(intptr_t)0x5a5a);
  enum { T = 8, ITERS = 12500 };
  pthread_t th[T];
  struct job jobs[T];
  for (int i = 0; i < T; i++) {
    jobs[i] = (struct job){i, ITERS, 0};
    CHECK(pthread_create(&th[i], NULL, worker, &jobs[i]) == 0);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    CHECK(jobs[i].errors == 0);
  }
  CHECK(shared_calls == (long)T * ITERS);
  cosmoext_closure_free((void *)g_shared);

  /* after all that, every slot is free again */
  got = 0;
  for (; got < COSMOEXT_CLOSURE_POOL; got++)
    if (!(all[got] = cosmoext_closure_new((void *)add_ud, NULL))) break;
  CHECK(got == COSMOEXT_CLOSURE_POOL);
  for (int i = 0; i < got; i++) cosmoext_closure_free(all[i]);

  printf("closure selftest: %ld checks passed\n", checks);
  return 0;
}
