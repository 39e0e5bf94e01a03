#!/usr/bin/env python3
"""Import time of ``.cosmoext`` images versus ordinary ``.so`` extensions, side by side.

Method
------
1. Build.  Each test extension (by default ``cx_tables`` and ``cx_state`` in C and
   ``cx_cpp`` in C++, from ``tests/ext/``) is built twice into a temporary directory:

   * as ``NAME.cosmoext`` with ``python -m cosmoext build-ext --pic`` (gcc/g++ -O2; the
     C++ image carries libstdc++ statically, as cosmoext always does);
   * as ``NAME<EXT_SUFFIX>`` (e.g. ``NAME.cpython-311-x86_64-linux-gnu.so``) with
     ``gcc``/``g++ -shared -fPIC -O2 -I<python include>``; C++ links libstdc++
     dynamically, as usual.

   The two flavours live in separate directories so each import finds exactly one file.

2. Measure.  Every sample is a FRESH interpreter (``sys.executable -c CHILD``), so the
   extension has never been loaded in that process ("cold-ish": a new process, but the
   files are in the page cache after the warm-up round).  Before timing, the child
   imports ``cosmoext._runtime`` (also in ``.so`` runs, so both processes are in the
   same state), ``importlib.util``/``importlib.machinery``, puts the build directory
   first on ``sys.path`` and primes its ``FileFinder`` (path hook + directory listing)
   with a lookup of a module that does not exist, then disables the GC.  What is timed
   is only ``importlib.import_module(NAME)``, with ``time.perf_counter_ns`` inside the
   child: spec lookup in an already-listed directory, the load (``cosmoext._runtime``
   or ``dlopen`` via ``_imp.create_dynamic``; for the C++ ``.so`` that includes loading
   ``libstdc++.so.6``), ``PyInit_NAME`` and, for multi-phase modules, ``Py_mod_exec``.
   Interpreter start-up is not counted.

   Runs are interleaved: every round runs, per module, the ``.cosmoext`` child then the
   ``.so`` child (ABAB...), for ``--rounds`` rounds after ``--warmup`` discarded rounds,
   so drift (frequency scaling, other load) hits both flavours alike.

3. Report.  Per module and flavour: median and interquartile range (p25..p75) of the
   import time, and file size.  ``cx/so`` is the ratio of the medians; because runs are
   paired, the per-round ratios ``cosmoext_i / so_i`` are also summarised by their p25
   and p75, and ``spread = p75 / p25`` of those ratios (1.00 = perfectly stable).
   From the same ``.cosmoext`` children, ``cosmoext._runtime.load_stats()`` gives the
   loader's own phase timings; their means are shown in µs, as a share of the loader
   total (sum of the five phases) and as a share of the mean import time; the "rest"
   row is import time not spent in those phases (import system, spec and module
   objects, ``Py_mod_exec``).  Phases: validate = read + SHA-256 + validation + import
   resolution; map = reserve + map segments; fixups = relocations + final protections;
   init_array = static constructors; PyInit = the module's init function.

Usage: ``python3 benchmarks/bench_import.py [--rounds N] [--json]``.  This is a
benchmark, not a test: it asserts nothing about speed and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quartiles  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXT_DIR = REPO / "tests" / "ext"
DEFAULT_MODULES = ("cx_tables", "cx_state", "cx_cpp")
PHASES = (
    ("validate", "validate_ns"),
    ("map", "map_ns"),
    ("fixups", "fixup_ns"),
    ("init_array", "init_array_ns"),
    ("PyInit", "pyinit_ns"),
)
KINDS = ("cosmoext", "so")

# Runs in a fresh interpreter: argv = [kind, module name, directory].
CHILD = r"""
import gc, importlib, importlib.machinery, importlib.util, json, sys, time
import cosmoext._runtime as rt
kind, name, where = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, where)
importlib.invalidate_caches()
importlib.machinery.PathFinder.find_spec("_cosmoext_bench_absent_", [where])
gc.disable()
t0 = time.perf_counter_ns()
mod = importlib.import_module(name)
t1 = time.perf_counter_ns()
gc.enable()
origin = mod.__spec__.origin
ok = origin.endswith(".cosmoext") if kind == "cosmoext" else origin.endswith(".so")
if not ok:
    raise SystemExit(f"{name} was loaded from {origin}, expected a {kind} file")
out = {"import_ns": t1 - t0}
if kind == "cosmoext":
    out["stats"] = rt.load_stats()
print(json.dumps(out))
"""


@dataclass
class Module:
    name: str
    source: Path
    cpp: bool
    files: dict[str, Path] = field(default_factory=dict)
    samples: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in KINDS})
    stats: list[dict[str, int]] = field(default_factory=list)


def run(cmd: list[str], cwd: Path) -> str:
    """Run ``cmd``; on failure show its output and stop."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(f"command failed ({proc.returncode}): {' '.join(cmd)}\n")
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(1)
    return proc.stdout


def find_source(name: str) -> tuple[Path, bool]:
    for ext, cpp in ((".c", False), (".cpp", True)):
        path = EXT_DIR / f"{name}{ext}"
        if path.is_file():
            return path, cpp
    raise SystemExit(f"no tests/ext/{name}.c or .cpp")


def build(mod: Module, work: Path, cc: str, cxx: str) -> None:
    cx_dir, so_dir = work / "cosmoext", work / "so"
    cx_dir.mkdir(exist_ok=True)
    so_dir.mkdir(exist_ok=True)
    cx_out = cx_dir / f"{mod.name}.cosmoext"
    run(
        [
            sys.executable,
            "-m",
            "cosmoext",
            "build-ext",
            "--name",
            mod.name,
            "--pic",
            str(mod.source),
            "-o",
            str(cx_out),
        ],
        cwd=work,
    )
    so_out = so_dir / f"{mod.name}{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    include = sysconfig.get_paths()["include"]
    compiler = cxx if mod.cpp else cc
    run(
        [compiler, "-shared", "-fPIC", "-O2", f"-I{include}", str(mod.source), "-o", str(so_out)],
        cwd=work,
    )
    mod.files = {"cosmoext": cx_out, "so": so_out}


def sample(mod: Module, kind: str, work: Path) -> dict[str, Any]:
    where = str(mod.files[kind].parent)
    out = run([sys.executable, "-c", CHILD, kind, mod.name, where], cwd=work)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def summarise(mod: Module) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        us = [ns / 1e3 for ns in mod.samples[kind]]
        q1, med, q3 = quartiles(us)
        kinds[kind] = {
            "file": mod.files[kind].name,
            "size_bytes": mod.files[kind].stat().st_size,
            "median_us": med,
            "p25_us": q1,
            "p75_us": q3,
            "iqr_us": q3 - q1,
            "min_us": min(us),
            "samples_us": us,
        }
    paired = [a / b for a, b in zip(mod.samples["cosmoext"], mod.samples["so"], strict=True)]
    r1, rmed, r3 = quartiles(paired)
    mean_import = statistics.fmean(mod.samples["cosmoext"])
    phase_means = {label: statistics.fmean(s[key] for s in mod.stats) for label, key in PHASES}
    loader_total = sum(phase_means.values())
    phases: dict[str, Any] = {
        label: {
            "mean_us": v / 1e3,
            "share_of_loader": v / loader_total if loader_total else 0.0,
            "share_of_import": v / mean_import if mean_import else 0.0,
        }
        for label, v in phase_means.items()
    }
    rest = mean_import - loader_total
    phases["rest"] = {
        "mean_us": rest / 1e3,
        "share_of_loader": None,
        "share_of_import": rest / mean_import if mean_import else 0.0,
    }
    return {
        "module": mod.name,
        "language": "C++" if mod.cpp else "C",
        "kinds": kinds,
        "ratio_of_medians": kinds["cosmoext"]["median_us"] / kinds["so"]["median_us"],
        "paired_ratio": {"p25": r1, "median": rmed, "p75": r3, "spread": r3 / r1},
        "size_ratio": kinds["cosmoext"]["size_bytes"] / kinds["so"]["size_bytes"],
        "cosmoext_phases": phases,
        "cosmoext_loader_mean_us": loader_total / 1e3,
        "cosmoext_import_mean_us": mean_import / 1e3,
        "fixups": mod.stats[-1].get("fixups") if mod.stats else None,
        "imports": mod.stats[-1].get("imports") if mod.stats else None,
    }


def table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(report: dict[str, Any]) -> str:
    meta = report["meta"]
    out = [
        f"cosmoext vs .so import time: {meta['rounds']} rounds (+{meta['warmup']} warm-up), "
        f"fresh interpreter per sample, ABAB interleaved; {meta['python']} on "
        f"{meta['machine']}, {meta['cpus']} CPUs; wall {meta['wall_s']:.1f} s",
        "",
    ]
    rows = [
        ["module", "lang", "kind", "size KiB", "median µs", "p25 µs", "p75 µs", "IQR µs", "min µs"]
    ]
    for r in report["modules"]:
        for kind in KINDS:
            k = r["kinds"][kind]
            rows.append(
                [
                    r["module"],
                    r["language"],
                    kind,
                    f"{k['size_bytes'] / 1024:.1f}",
                    f"{k['median_us']:.1f}",
                    f"{k['p25_us']:.1f}",
                    f"{k['p75_us']:.1f}",
                    f"{k['iqr_us']:.1f}",
                    f"{k['min_us']:.1f}",
                ]
            )
    out += [table(rows, right={3, 4, 5, 6, 7, 8}), ""]

    rows = [
        [
            "module",
            "cx/so (medians)",
            "paired p25",
            "paired median",
            "paired p75",
            "spread p75/p25",
            "size cx/so",
        ]
    ]
    for r in report["modules"]:
        p = r["paired_ratio"]
        rows.append(
            [
                r["module"],
                f"{r['ratio_of_medians']:.2f}x",
                f"{p['p25']:.2f}x",
                f"{p['median']:.2f}x",
                f"{p['p75']:.2f}x",
                f"{p['spread']:.2f}",
                f"{r['size_ratio']:.2f}x",
            ]
        )
    out += [table(rows, right={1, 2, 3, 4, 5, 6}), ""]

    labels = [label for label, _ in PHASES] + ["rest"]
    header = ["phase (mean)"]
    for r in report["modules"]:
        header += [f"{r['module']} µs", "% loader", "% import"]
    rows = [header]
    for label in labels:
        row = [label]
        for r in report["modules"]:
            ph = r["cosmoext_phases"][label]
            share = ph["share_of_loader"]
            row += [
                f"{ph['mean_us']:.1f}",
                "" if share is None else f"{100 * share:.1f}",
                f"{100 * ph['share_of_import']:.1f}",
            ]
        rows.append(row)
    total = ["loader total"]
    imp = ["import (mean)"]
    for r in report["modules"]:
        total += [
            f"{r['cosmoext_loader_mean_us']:.1f}",
            "100.0",
            f"{100 * r['cosmoext_loader_mean_us'] / r['cosmoext_import_mean_us']:.1f}",
        ]
        imp += [f"{r['cosmoext_import_mean_us']:.1f}", "", "100.0"]
    rows += [total, imp]
    out.append("cosmoext._runtime.load_stats() phases, mean over the .cosmoext samples:")
    out.append(table(rows, right=set(range(1, len(header)))))
    counts = ", ".join(
        f"{r['module']}: {r['fixups']} fixups, {r['imports']} imports" for r in report["modules"]
    )
    out.append(f"({counts}; rest = import time outside the five phases)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    ap.add_argument("--warmup", type=int, default=1, help="discarded rounds (default 1)")
    ap.add_argument(
        "--modules",
        nargs="+",
        default=list(DEFAULT_MODULES),
        help="tests/ext module names (default: %(default)s)",
    )
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--keep", action="store_true", help="keep the build directory")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        ap.error("--rounds must be >= 1 and --warmup >= 0")

    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="cosmoext-bench-"))
    try:
        mods = [Module(name, *find_source(name)) for name in args.modules]
        for mod in mods:
            build(mod, work, args.cc, args.cxx)
        for rnd in range(args.warmup + args.rounds):
            for mod in mods:
                for kind in KINDS:
                    res = sample(mod, kind, work)
                    if rnd < args.warmup:
                        continue
                    mod.samples[kind].append(res["import_ns"])
                    if kind == "cosmoext":
                        mod.stats.append(res["stats"])
        report = {
            "meta": {
                "rounds": args.rounds,
                "warmup": args.warmup,
                "python": f"{platform.python_implementation()} {platform.python_version()}",
                "machine": f"{platform.system()} {platform.machine()}",
                "cpus": os.cpu_count(),
                "cc": args.cc,
                "cxx": args.cxx,
                "wall_s": time.perf_counter() - start,
                "workdir": str(work) if args.keep else None,
            },
            "modules": [summarise(m) for m in mods],
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
