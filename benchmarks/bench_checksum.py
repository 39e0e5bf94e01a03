#!/usr/bin/env python3
"""What the default checksum costs: import time with the CRC-32C check (level 1, the
default) against no check (level 0), side by side, and the checksum's own speed.

Method: ``tests/ext/cx_cpp.cpp`` (C++, ~700 KiB, four segments) and ``cx_tables.c`` (a
small C image) are built with ``cosmoext build-ext --pic``; any other ``.cosmoext``
files given with ``--image PATH:MODULE`` are measured too.  Every sample is a fresh
interpreter that imports ``cosmoext._runtime``, sets the level, and times
``importlib.import_module`` (``perf_counter_ns``); levels alternate (ABAB...) for
``--rounds`` rounds after a discarded warm-up, so drift hits both alike.  Reported: the
median import time per level, the difference and its share of the unchecked import,
the loader's ``validate`` phase per level, and ``_runtime.crc32c`` throughput over the
file (median of 200 calls, in this process).

Usage: ``python3 benchmarks/bench_checksum.py [--rounds N] [--image PATH:MODULE]``.
A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

CHILD = r"""
import importlib, importlib.util, json, sys, time
sys.path.insert(0, sys.argv[1])
from cosmoext import _runtime
_runtime.set_verify(int(sys.argv[3]))
importlib.util.find_spec("cx_no_such_module")
t = time.perf_counter_ns()
importlib.import_module(sys.argv[2])
t = time.perf_counter_ns() - t
print(json.dumps({"ns": t, "validate_ns": _runtime.load_stats()["validate_ns"]}))
"""


def sample(folder: Path, module: str, level: int) -> dict[str, int]:
    p = subprocess.run([sys.executable, "-c", CHILD, str(folder), module, str(level)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def crc_speed(path: Path) -> tuple[float, float]:
    from cosmoext import _runtime
    data = path.read_bytes()
    times = []
    for _ in range(200):
        t = time.perf_counter_ns()
        _runtime.crc32c(data)
        times.append(time.perf_counter_ns() - t)
    med = statistics.median(times)
    return med / 1000, len(data) / med  # µs, GB/s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--image", action="append", default=[], help="PATH:MODULE")
    args = ap.parse_args()
    from support.build import build_ext
    from support.extensions import cflags, sources

    from cosmoext import _runtime

    tmp = Path(tempfile.mkdtemp(prefix="bench-checksum-"))
    images: list[tuple[Path, str]] = []
    for name in ("cx_cpp", "cx_tables"):
        out = tmp / name / f"{name}.cosmoext"
        out.parent.mkdir()
        build_ext(name=name, sources=sources(name), output=str(out), pic=True,
                  cflags=cflags(name))
        images.append((out, name))
    for spec in args.image:
        path, module = spec.rsplit(":", 1)
        images.append((Path(path), module))

    print(f"CRC-32C implementation: {_runtime.crc32c_impl()}; {args.rounds} rounds, "
          "fresh interpreter per sample, levels interleaved\n")
    print("| image | file KiB | import, no check (µs) | import, CRC-32C (µs) | difference (µs) "
          "| share | validate 0 / 1 (µs) | crc32c alone (µs, GB/s) |")
    print("|---|---|---|---|---|---|---|---|")
    for path, module in images:
        for level in (0, 1):
            sample(path.parent, module, level)  # warm-up (page cache, .pyc)
        runs: dict[int, list[dict[str, int]]] = {0: [], 1: []}
        for _ in range(args.rounds):
            for level in (0, 1):
                runs[level].append(sample(path.parent, module, level))
        med = {lv: statistics.median(r["ns"] for r in runs[lv]) / 1000 for lv in runs}
        val = {lv: statistics.median(r["validate_ns"] for r in runs[lv]) / 1000 for lv in runs}
        us, gbs = crc_speed(path)
        diff = med[1] - med[0]
        print(f"| {module} | {path.stat().st_size // 1024} | {med[0]:.0f} | {med[1]:.0f} "
              f"| {diff:+.0f} | {100 * diff / med[0]:+.1f}% | {val[0]:.0f} / {val[1]:.0f} "
              f"| {us:.1f}, {gbs:.1f} |")


if __name__ == "__main__":
    main()
