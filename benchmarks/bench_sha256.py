"""Throughput of the runtime's freestanding SHA-256 (cosmoext/runtime/cxsha256.c).

Compiles a small driver with the C compiler at each optimisation level and
hashes ``--mb`` MiB in 16 MiB calls from an odd (unaligned) offset, best of
three; prints MB/s per level (``--json`` for a record).  Not a test: the
correctness checks are in tests/test_harness.py.

Usage: ``python3 benchmarks/bench_sha256.py [--mb N] [--cc gcc] [--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "cosmoext" / "runtime"

DRIVER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cxsha256.h"

int main(int argc, char **argv)
{
    uint8_t d[32];
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 128, sz = 16u << 20;
    size_t rounds = (mb << 20) / sz;
    unsigned char *buf = malloc(sz + 1);
    struct timespec t0, t1;
    double best = 1e30;
    if (!buf || rounds == 0) return 2;
    for (size_t i = 0; i <= sz; i++) buf[i] = (unsigned char)(i * 131u + 7u);
    cx_sha256(buf, 3, d);  /* checked against hashlib: the build hashes correctly */
    for (int i = 0; i < 32; i++) printf("%02x", d[i]);
    printf("\n");
    for (int rep = 0; rep < 3; rep++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (size_t r = 0; r < rounds; r++) {
            cx_sha256(buf + (r & 1), sz, d);  /* odd offset: unaligned */
            buf[r % sz] ^= d[0];
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (s < best) best = s;
    }
    printf("%.1f\n", (double)(rounds * sz) / best / 1e6);
    free(buf);
    return 0;
}
"""


def measure(cc: str, opt: str, mb: int, tmp: Path) -> float:
    src, exe = tmp / "bench_sha.c", tmp / f"bench_sha{opt}"
    src.write_text(DRIVER)
    subprocess.run([cc, opt, "-std=c99", f"-I{RUNTIME}", "-o", str(exe), str(src),
                    str(RUNTIME / "cxsha256.c")], check=True)
    digest, mbps = subprocess.run([str(exe), str(mb)], check=True, capture_output=True,
                                  text=True).stdout.split()
    want = hashlib.sha256(bytes((i * 131 + 7) & 0xFF for i in range(3))).hexdigest()
    if digest != want:
        raise SystemExit(f"bench_sha256: {cc} {opt}: wrong digest {digest} (want {want})")
    return float(mbps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=128, help="MiB hashed per repetition")
    ap.add_argument("--cc", default="gcc")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        res = {opt: measure(args.cc, opt, args.mb, Path(d)) for opt in ("-O2", "-O3", "-Os")}
    if args.json:
        print(json.dumps({"cc": args.cc, "mb": args.mb, "mb_per_s": res}))
    else:
        for opt, mbps in res.items():
            print(f"cxsha256 {args.cc} {opt}: {mbps:.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
