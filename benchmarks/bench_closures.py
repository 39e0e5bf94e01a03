#!/usr/bin/env python3
"""Closures from the cosmoext pool versus ctypes ``CFUNCTYPE``, side by side.

Method
------
1. Build ``examples/callbacks`` into a temporary ``callbacks.cosmoext`` with
   the ``cosmoext build-ext`` CLI.  Its ``call_ii_many(address, n)`` is a C
   loop calling an ``int (*)(int, int)`` n times; both kinds of closure are
   called by that same loop.

2. Measure, in one process, alternating the two kinds in every round (ABAB),
   with the GC disabled while timing; the median of ``--rounds`` rounds after
   one discarded warm-up round is reported:

   * create+free, Python callable: ``cosmoext._runtime.closure(f, "i(ii)")``
     then ``.free()``, versus ``ctypes.CFUNCTYPE(c_int, c_int, c_int)(f)`` then
     dropping it (the prototype object is made once, outside the loop).  Per
     operation, over ``--create`` operations.
   * call from C into Python: ``call_ii_many`` on each closure's address, per
     call, over ``--calls`` calls; the callable is ``lambda a, b: a + b``.
   * create+free in C, no Python involved: ``cosmoext_closure_new`` +
     ``cosmoext_closure_free`` in a C loop (``new_free_many``); ctypes has no
     counterpart (its closures are always Python objects), shown for scale.

   Ratios are ctypes / cosmoext: above 1 means the cosmoext closure is faster.
   Also reported: whether a writable+executable mapping exists in this process
   after the cosmoext runs (must be no) and after the ctypes runs (libffi's
   closures: yes on this machine).

Usage: ``python3 benchmarks/bench_closures.py [--rounds N] [--json]``.  A
benchmark, not a test: it asserts nothing about speed and exits 0.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wx_mappings() -> int:
    n = 0
    with open("/proc/self/maps") as f:
        for line in f:
            perms = line.split()[1]
            n += "w" in perms and "x" in perms
    return n


def _build(tmp: str):
    import cosmoext

    out = os.path.join(tmp, "callbacks.cosmoext")
    subprocess.run([sys.executable, "-m", "cosmoext", "build-ext", "--name", "callbacks",
                    str(ROOT / "examples" / "callbacks" / "callbacks.c"),
                    "-I", cosmoext.get_include(), "-o", out], check=True, capture_output=True)
    return cosmoext.load(out)


def _timed(fn, n: int) -> float:
    """ns per operation of fn(n)."""
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        fn(n)
        return (time.perf_counter_ns() - t0) / n
    finally:
        gc.enable()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--create", type=int, default=20000, help="create+free operations per round")
    ap.add_argument("--calls", type=int, default=200000, help="calls per round")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import cosmoext._runtime as rt

    with tempfile.TemporaryDirectory(prefix="cx-bench-closures-") as tmp:
        ext = _build(tmp)

    def add(a: int, b: int) -> int:
        return a + b

    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)

    def cx_create(n: int) -> None:
        closure = rt.closure
        for _ in range(n):
            closure(add, "i(ii)").free()

    def ct_create(n: int) -> None:
        for _ in range(n):
            proto(add)

    cx_c = rt.closure(add, "i(ii)")
    wx_after_cx = _wx_mappings()
    ct_c = proto(add)
    ct_addr = ctypes.cast(ct_c, ctypes.c_void_p).value
    assert ext.call_ii_many(cx_c.address, 10) == ext.call_ii_many(ct_addr, 10) == 55

    def cx_call(n: int) -> None:
        ext.call_ii_many(cx_c.address, n)

    def ct_call(n: int) -> None:
        ext.call_ii_many(ct_addr, n)

    def c_new_free(n: int) -> None:
        ext.new_free_many(n)

    samples: dict[str, list[float]] = {k: [] for k in
                                       ("cx_create", "ct_create", "cx_call", "ct_call", "c_new")}
    for r in range(args.rounds + 1):
        row = {
            "cx_create": _timed(cx_create, args.create),
            "ct_create": _timed(ct_create, args.create),
            "cx_call": _timed(cx_call, args.calls),
            "ct_call": _timed(ct_call, args.calls),
            "c_new": _timed(c_new_free, args.calls),
        }
        if r:  # round 0 warms up
            for k, v in row.items():
                samples[k].append(v)
    wx_after_ct = _wx_mappings()
    cx_c.free()

    med = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "ns": med,
        "create_ratio_ctypes_over_cosmoext": med["ct_create"] / med["cx_create"],
        "call_ratio_ctypes_over_cosmoext": med["ct_call"] / med["cx_call"],
        "wx_mappings_after_cosmoext": wx_after_cx,
        "wx_mappings_after_ctypes": wx_after_ct,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"closures: cosmoext pool vs ctypes CFUNCTYPE; {result['machine']}, "
          f"Python {result['python']}, {result['cpus']} CPUs, median of {args.rounds} rounds")
    print(f"{'':32}{'cosmoext':>12}{'ctypes':>12}{'ctypes/cosmoext':>18}")
    print(f"{'create+free (Python callable)':32}{med['cx_create']:>10.0f}ns"
          f"{med['ct_create']:>10.0f}ns{result['create_ratio_ctypes_over_cosmoext']:>17.2f}x")
    print(f"{'call from C into Python':32}{med['cx_call']:>10.0f}ns{med['ct_call']:>10.0f}ns"
          f"{result['call_ratio_ctypes_over_cosmoext']:>17.2f}x")
    print(f"{'create+free in C (no Python)':32}{med['c_new']:>10.1f}ns{'-':>12}")
    print(f"writable+executable mappings: after cosmoext closures {wx_after_cx}, "
          f"after ctypes closures {wx_after_ct}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
