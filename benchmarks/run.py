#!/usr/bin/env python3
"""Every headline measure of cosmoext against native builds, in one run.

``python3 benchmarks/run.py`` builds what it needs in a work directory, measures
the rows below side by side (cosmoext and native samples taken in pairs, the
order alternating each round: A B, B A, ...; round 0 is a discarded warm-up),
and writes the table into ``--out`` (default ``docs/benchmarks.md``, between
the ``run.py`` markers; the rest of that file is kept).  Ratios are
cosmoext/native: the median of the per-round paired ratios, with their p25..p75.
Times are taken with ``perf_counter_ns`` inside a fresh child process, so
interpreter start-up never counts.

Rows (goal in brackets):

1. **warm import** of the test extensions ``cx_tables`` and ``cx_state``
   (``tests/ext``): ``build-ext --pic`` image against the same source as a
   ``gcc -shared -fPIC -O2`` ``.so`` (``bench_import.build``); the child has
   ``cosmoext._runtime`` loaded already and the directory listed [<= 0.9x].
2. **first import**: ``import ujson`` in a fresh process of the host CPython
   (a venv holding only cosmoext and its ``.pth`` hook, which does not import
   the runtime), so the ``.cosmoext`` side includes loading
   ``cosmoext._runtime`` [<= 0.6x]; and ``import cosmoext._runtime`` alone in a
   fresh process [<= 150 us].
3. **cold import** of ujson 6.1.0: before each sample the files are evicted
   from the page cache (``posix_fadvise(DONTNEED)``, residency checked with
   ``mincore``).  Variant *ext*: the extension file only.  Variant *ext +
   libs*: also every file the import newly maps, found by diffing
   ``/proc/self/maps`` around the import in a probe run (for the native build
   ``libstdc++.so.6`` and ``libgcc_s.so.1``; a file that other processes map
   keeps its mapped pages, which the details say) [<= 0.8x].
4. **size**: ``ujson.cosmoext`` as built against a ``strip --strip-unneeded``
   copy of the native ``.so``; also each image's loadable bytes [<= 2x].
   Rows 2 and 4 are measured again for ujson built with ``-C
   cxx-runtime=shared`` (the C++ runtime imported from ``libstdc++.so.6``
   instead of carried in the image); the row-2 details also time opening
   ``libstdc++.so.6`` alone in a fresh process.
5. **greenlet Ir**: ``valgrind --tool=callgrind`` instructions per
   create+run and per switch pair, (Ir of N calls - Ir of 0 calls) / N, so
   start-up and setup cancel (``bench_ports.measure_ir``) [<= 1.000].
6. **embedded import**: ``import ujson`` / ``cx_tables`` in the interpreter
   ``cosmoext embed`` links from Debian's ``libpython3.11.a`` (non-PIC images,
   as ``tests/support/ports.py`` builds for it) against the same modules as
   ``.so`` files in Debian's dynamic ``/usr/bin/python3.11 -S`` (the embedded
   interpreter runs no site either) [<= 0.7x].
7. **syscalls**: ``strace -f`` of one warm import of ``cx_tables`` and of
   ``ujson`` (runtime already loaded), counting the calls between two
   ``write()`` markers [cosmoext <= dlopen's].

ujson 6.1.0 and greenlet 3.5.6 come from PyPI: ``cosmoext wheel`` (PIC, and
``-C pic=false`` for row 6, ``-C cxx-runtime=shared`` for the shared rows)
against ``pip wheel --no-binary :all:`` (this CPython's flags).  ``--offline``
skips what needs them.

Usage: ``python3 benchmarks/run.py [--rounds N] [--quick] [--offline]
[--out FILE] [--json] [--work DIR]``.  Exit status 1 when a row could not be
measured; goals that are missed are reported, not failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_import  # noqa: E402
import bench_ports  # noqa: E402
from _common import quartiles, summary  # noqa: E402

ports = bench_ports.ports
KINDS = ("cosmoext", "native")
UJSON, GREENLET = bench_ports.PORTS["ujson"][0], bench_ports.PORTS["greenlet"][0]
DEBIAN = Path("/usr/bin/python3.11")
# Stdlib modules an extension's init imports: imported before the timed import in
# both kinds (the same work on both sides; the embedded interpreter lacks _decimal
# and would time _pydecimal).
PRELOAD = {"ujson": "decimal"}
BEGIN = "<!-- run.py: begin -->"
END = "<!-- run.py: end -->"

# A fresh child: argv = mode, module, directory, stdlib modules to import first
# (comma-separated, or "-").  Modes: "runtime-only" times
# ``import cosmoext._runtime``; "plain" imports nothing of cosmoext first;
# "preload", "maps" and "strace" load the runtime first; "maps" also lists the
# files the import newly maps; "strace"/"strace-first" write markers around it.
# Opening the C++ runtime alone, as a native C++ extension's import does.
OPEN_LIBSTDCXX = ("import ctypes, json, time; t = time.perf_counter_ns(); "
                  "ctypes.CDLL('libstdc++.so.6'); "
                  "print(json.dumps({'ns': time.perf_counter_ns() - t}))")

CHILD = r"""
import gc, sys, time
mode, name, where, pre = sys.argv[1:5]
if mode == "runtime-only":
    gc.disable()
    t0 = time.perf_counter_ns()
    import cosmoext._runtime
    t1 = time.perf_counter_ns()
    print('{"ns": %d}' % (t1 - t0))
    raise SystemExit
import importlib, importlib.machinery, os
if mode in ("preload", "maps", "strace"):
    import cosmoext._runtime
before = "cosmoext._runtime" in sys.modules
for m in pre.split(","):
    if m != "-":
        importlib.import_module(m)
sys.path.insert(0, where)
importlib.invalidate_caches()
importlib.machinery.PathFinder.find_spec("_cosmoext_bench_absent_", [where])

def maps():
    with open("/proc/self/maps") as f:
        return {p[5] for p in (ln.split(None, 5) for ln in f) if len(p) == 6}

m0 = maps() if mode == "maps" else set()
gc.disable()
if mode.startswith("strace"):
    os.write(2, b"@@cx-bench-begin@@")
t0 = time.perf_counter_ns()
mod = importlib.import_module(name)
t1 = time.perf_counter_ns()
if mode.startswith("strace"):
    os.write(2, b"@@cx-bench-end@@")
gc.enable()
new = sorted(p.strip() for p in maps() - m0 if p.startswith("/")) if mode == "maps" else []
import json
print(json.dumps({"ns": t1 - t0, "origin": mod.__spec__.origin, "runtime_before": before,
                  "new_maps": new}))
"""


@dataclass
class Row:
    key: str
    measure: str
    goal: str
    limit: float  # goal: value (ratio, or cosmoext value if absolute) <= limit
    unit: str  # of the cosmoext/native columns
    absolute: bool = False  # the goal is on the cosmoext value, not the ratio
    cosmoext: float | None = None
    native: float | None = None
    ratio: float | None = None
    details: str = ""
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        value = self.cosmoext if self.absolute else self.ratio
        return None if value is None else value <= self.limit

    def fill(self, s: dict[str, Any], scale: float = 1.0) -> None:
        """Take the medians and the paired ratio from a ``summary``."""
        self.cosmoext, self.native, self.ratio = s["cosmoext"] * scale, s["native"] * scale, \
            s["ratio"]
        self.data.update(s)


def log(line: str) -> None:
    print(f"run.py: {line}", file=sys.stderr, flush=True)


def run(cmd: list[str | Path], env: dict[str, str] | None = None) -> str:
    return bench_ports.run([str(c) for c in cmd], env=env).stdout


def last_json(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def paired(rounds: int, take: Callable[[str], float]) -> dict[str, Any]:
    """ROUNDS pairs of TAKE(kind), alternating the order; round 0 is discarded."""
    per: dict[str, list[float]] = {k: [] for k in KINDS}
    for rnd in range(rounds + 1):
        vals = {k: take(k) for k in (KINDS if rnd % 2 == 0 else KINDS[::-1])}
        if rnd:
            for k in KINDS:
                per[k].append(vals[k])
    return summary(per)


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit in ("bytes", "Ir/op", "syscalls"):
        return f"{v:,.0f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


class Bench:
    """Builds on first use, then the measurements; each ``row_*`` fills rows."""

    def __init__(self, root: Path, rounds: int, quick: bool) -> None:
        self.root = root
        self.rounds = rounds
        self.quick = quick
        self.work = ports.Work(root / "ports")
        self.env = bench_ports.child_env()
        self._cache: dict[str, Any] = {}

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    # -- builds -----------------------------------------------------------------

    @property
    def host(self) -> list[str]:
        return [str(self.once("host", self.work.host_python))]

    @property
    def embed(self) -> list[str]:
        return [str(self.once("embed", self.work.embed_python))]

    def test_ext(self, name: str) -> dict[str, Path]:
        """tests/ext NAME: PIC ``.cosmoext``, ``.so`` and non-PIC ``.cosmoext``; their dirs."""
        def make() -> dict[str, Path]:
            d = self.root / "ext"
            d.mkdir(exist_ok=True)
            mod = bench_import.Module(name, *bench_import.find_source(name))
            bench_import.build(mod, d, os.environ.get("CC", "gcc"), os.environ.get("CXX", "g++"))
            nopic = d / "nopic" / f"{name}.cosmoext"
            nopic.parent.mkdir(exist_ok=True)
            run([sys.executable, "-m", "cosmoext", "build-ext", "--name", name, "--no-pic",
                 mod.source, "-o", nopic])
            return {"cosmoext": mod.files["cosmoext"], "native": mod.files["so"],
                    "nopic": nopic}
        result: dict[str, Path] = self.once(f"ext-{name}", make)
        return result

    def port(self, port: str) -> dict[str, Path]:
        """PORT installed three ways (cosmoext PIC, native, cosmoext non-PIC); the
        directories, and the extension files under ``file-<kind>``."""
        def make() -> dict[str, Path]:
            req, _, exts = bench_ports.PORTS[port]
            log(f"{port}: building {req} (cosmoext wheel, pip wheel)")
            nat_dir = self.root / "native" / port
            found = sorted(nat_dir.glob("*.whl"))
            nat = found[0] if found else bench_ports.native_wheel(req, nat_dir)[0]
            wheels = {"cosmoext": self.work.wheel(req, "pic"), "native": nat}
            if port == "ujson":
                wheels["nopic"] = self.work.wheel(req, "nopic")
                wheels["shared"] = self.work.wheel(req, "pic-shared-cxx")
            out: dict[str, Path] = {}
            for kind, whl in wheels.items():
                target = self.root / f"t-{kind}" / port
                bench_ports.install(whl, target)
                out[kind] = target
                (out[f"file-{kind}"],) = bench_ports.ext_files(
                    target, exts, "native" if kind == "native" else "cosmoext")
            return out
        result: dict[str, Path] = self.once(f"port-{port}", make)
        return result

    # -- one child ---------------------------------------------------------------

    def child(self, py: list[str], mode: str, name: str, where: Path,
              kind: str) -> dict[str, Any]:
        res = last_json(run([*py, "-c", CHILD, mode, name, where, PRELOAD.get(name, "-")],
                            env=self.env))
        origin = res["origin"] or ""
        if not origin.endswith(".so" if kind == "native" else ".cosmoext"):
            raise SystemExit(f"{name} came from {origin}, expected a {kind} build")
        return res

    def import_us(self, py: list[str], mode: str, name: str,
                  dirs: dict[str, Path]) -> dict[str, Any]:
        """Paired import times (µs) of NAME from DIRS[kind]."""
        return paired(self.rounds,
                      lambda k: float(self.child(py, mode, name, dirs[k], k)["ns"]) / 1e3)

    # -- rows --------------------------------------------------------------------

    def row1(self, name: str, row: Row) -> None:
        files = self.test_ext(name)
        dirs = {k: files[k].parent for k in KINDS}
        row.fill(self.import_us(self.host, "preload", name, dirs))
        row.details = "fresh host CPython per sample, runtime loaded first, gcc -O2 both"

    def row2(self, row: Row, kind: str = "cosmoext") -> None:
        d = self.port("ujson")
        dirs = {"cosmoext": d[kind], "native": d["native"]}

        def take(kind: str) -> float:
            res = self.child(self.host, "plain", "ujson", dirs[kind], kind)
            if res["runtime_before"]:
                raise SystemExit("cosmoext._runtime was loaded before the import")
            return float(res["ns"]) / 1e3
        row.fill(paired(self.rounds, take))
        row.details = ("fresh host CPython per sample, .pth hook installed, runtime not "
                       "loaded before: the .cosmoext side includes loading cosmoext._runtime")
        if kind == "shared":
            us = [float(last_json(run([*self.host, "-c", OPEN_LIBSTDCXX], env=self.env))["ns"])
                  / 1e3 for _ in range(self.rounds)]
            q1, med, q3 = quartiles(us)
            row.data["libstdcxx_open_us"] = {"median": med, "p25": q1, "p75": q3, "n": len(us)}
            row.details += ("; built with -C cxx-runtime=shared, so both sides open "
                            f"libstdc++.so.6, which alone takes {med:,.0f} µs (IQR {q1:,.0f}-"
                            f"{q3:,.0f}; ctypes.CDLL in a fresh process)")

    def row2_runtime(self, row: Row) -> None:
        us = []
        for rnd in range(self.rounds + 1):
            res = last_json(run([*self.host, "-c", CHILD, "runtime-only", "-", "-", "-"],
                                env=self.env))
            if rnd:
                us.append(res["ns"] / 1e3)
        q1, med, q3 = quartiles(us)
        row.cosmoext = med
        row.data = {"cosmoext_p25": q1, "cosmoext_p75": q3, "n": len(us)}
        row.details = "import cosmoext._runtime in a fresh host CPython (absolute goal)"

    def row3(self, rows: tuple[Row, Row]) -> None:
        d = self.port("ujson")
        # Probe: which files does each import newly map besides its own file and
        # what the other kind's import maps as well (stdlib modules)?
        new: dict[str, set[str]] = {}
        for kind in KINDS:
            res = self.child(self.host, "maps", "ujson", d[kind], kind)
            new[kind] = {p for p in res["new_maps"]
                         if not p.startswith(str(d[kind])) and Path(p).is_file()}
        libs = {k: [Path(p) for p in sorted(new[k] - new[o])]
                for k, o in zip(KINDS, KINDS[::-1], strict=True)}
        users = {str(p): other_users(p) for k in KINDS for p in libs[k]}
        for row, with_libs in zip(rows, (False, True), strict=True):
            left: dict[str, list[float]] = {}

            def take(kind: str, with_libs: bool = with_libs,
                     left: dict[str, list[float]] = left) -> float:
                files = [d[f"file-{kind}"], *(libs[kind] if with_libs else [])]
                for f in files:
                    left.setdefault(str(f), []).append(bench_ports.evict([f]))
                return float(self.child(self.host, "preload", "ujson", d[kind], kind)["ns"]) / 1e3
            row.fill(paired(self.rounds, take))
            resident = {f: max(v) for f, v in left.items()}
            row.data.update({"evicted": {k: [str(d[f"file-{k}"])] + (
                [str(p) for p in libs[k]] if with_libs else []) for k in KINDS},
                "resident_after_evict_max": resident, "newly_mapped": {
                    k: [str(p) for p in libs[k]] for k in KINDS}, "other_users": users})
            kept = [f"{Path(f).name} {100 * r:.0f}%" for f, r in resident.items() if r > 0.01]
            what = "ext file + newly mapped libraries" if with_libs else "ext file only"
            row.details = (f"evicted: {what}; native newly maps "
                           f"{', '.join(p.name for p in libs['native']) or 'nothing'}, "
                           f"cosmoext {', '.join(p.name for p in libs['cosmoext']) or 'nothing'}"
                           + "".join(f"; {Path(f).name} mapped by {n} other process(es)"
                                     for f, n in users.items() if n and with_libs)
                           + (f"; still resident after eviction: {', '.join(kept)}" if kept
                              else "; all evicted (mincore)") + "; runtime loaded first")

    def row4(self, file_row: Row, image_row: Row | None = None,
             kind: str = "cosmoext") -> None:
        d = self.port("ujson")
        s = bench_ports.sizes({"cosmoext": [d[f"file-{kind}"]], "native": [d["file-native"]]},
                              self.root)
        cx, nat = s["cosmoext"][0], s["native"][0]
        file_row.cosmoext, file_row.native = cx["file_bytes"], nat["stripped_bytes"]
        file_row.ratio = cx["file_bytes"] / nat["stripped_bytes"]
        file_row.data = s
        file_row.details = (f".so as built {nat['file_bytes']:,} bytes; stripped copy: "
                            "strip --strip-unneeded")
        if image_row is None:
            return
        worst = max(cx["images"], key=lambda im: im["bytes"])
        image_row.cosmoext, image_row.native = worst["bytes"], nat["stripped_bytes"]
        image_row.ratio = worst["bytes"] / nat["stripped_bytes"]
        image_row.data = {"images": cx["images"]}
        image_row.details = "loadable bytes per image: " + ", ".join(
            f"{im['arch']} {im['bytes']:,}" for im in cx["images"])

    def row5(self, rows: tuple[Row, Row]) -> None:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind not found (apt-get install valgrind)")
        d = self.port("greenlet")
        scale = 0.25 if self.quick else 1.0
        ir = bench_ports.measure_ir(Path(self.host[0]), "greenlet", {k: d[k] for k in KINDS},
                                    self.root, scale)
        for row, kernel in zip(rows, ("create+run", "switch pair"), strict=True):
            r = ir[kernel]
            row.cosmoext, row.native, row.ratio = r["cosmoext"], r["native"], r["ratio"]
            row.data = r
            row.details = (f"callgrind, (Ir of {r['calls']} calls - Ir of 0 calls) / "
                           f"{r['calls']}, exact (n = 1)")

    def row6(self, name: str, row: Row) -> None:
        if not DEBIAN.exists():
            raise SystemExit(f"{DEBIAN}: not installed")
        if name == "ujson":
            d = self.port("ujson")
            dirs = {"cosmoext": d["nopic"], "native": d["native"]}
        else:
            files = self.test_ext(name)
            dirs = {"cosmoext": files["nopic"].parent, "native": files["native"].parent}

        def take(kind: str) -> float:
            py = self.embed if kind == "cosmoext" else [str(DEBIAN), "-S"]
            return float(self.child(py, "plain", name, dirs[kind], kind)["ns"]) / 1e3
        row.fill(paired(self.rounds, take))
        row.details = ("cosmoext embed interpreter (non-PIC image) vs /usr/bin/python3.11 -S "
                       "(.so), fresh process each")

    def row7(self, name: str, row: Row) -> None:
        if shutil.which("strace") is None:
            raise SystemExit("strace not found (apt-get install strace)")
        if name == "ujson":
            d = self.port("ujson")
            dirs = {k: d[k] for k in KINDS}
        else:
            files = self.test_ext(name)
            dirs = {k: files[k].parent for k in KINDS}
        counts = {k: self.syscalls("strace", name, dirs[k], k) for k in KINDS}
        first = self.syscalls("strace-first", name, dirs["cosmoext"], "cosmoext")
        row.cosmoext = sum(counts["cosmoext"].values())
        row.native = sum(counts["native"].values())
        row.ratio = row.cosmoext / row.native
        # plain dicts: dataclasses.asdict would rebuild a Counter from its items
        row.data = {"counts": {k: dict(v) for k, v in counts.items()},
                    "cosmoext_first_import": dict(first)}
        top = sorted(set(counts["cosmoext"]) | set(counts["native"]),
                     key=lambda s: -(counts["cosmoext"][s] + counts["native"][s]))
        row.details = ("strace -f, between write() markers, runtime loaded first; "
                       "cosmoext/native: " + ", ".join(
                           f"{s} {counts['cosmoext'][s]}/{counts['native'][s]}" for s in top)
                       + f"; first .cosmoext import incl. loading the runtime: "
                       f"{sum(first.values())}")

    def syscalls(self, mode: str, name: str, where: Path, kind: str) -> Counter[str]:
        trace = self.root / "strace.txt"
        run(["strace", "-f", "-qq", "-o", trace, *self.host, "-c", CHILD, mode, name, where,
             PRELOAD.get(name, "-")], env=self.env)
        counts: Counter[str] = Counter()
        inside = False
        for line in trace.read_text().splitlines():
            if "@@cx-bench-begin@@" in line:
                inside = True
                continue
            if "@@cx-bench-end@@" in line:
                break
            m = re.match(r"(?:\d+\s+)?([a-z_0-9]+)\(", line)
            if inside and m and "resumed>" not in line:
                counts[m.group(1)] += 1
        if not inside:
            raise SystemExit(f"strace of {name} ({kind}): no markers in {trace}")
        return counts


def other_users(path: Path) -> int:
    """How many other processes map PATH (their pages stay resident)."""
    n = 0
    for maps in Path("/proc").glob("[0-9]*/maps"):
        if maps.parent.name == str(os.getpid()):
            continue
        try:
            if str(path) in maps.read_text():
                n += 1
        except OSError:
            continue
    return n


def make_rows() -> list[Row]:
    return [
        Row("1.cx_tables", "1. cx_tables warm import (µs)", "≤ 0.9×", 0.9, "µs"),
        Row("1.cx_state", "1. cx_state warm import (µs)", "≤ 0.9×", 0.9, "µs"),
        Row("2.ujson", "2. ujson first import, incl. loading the runtime (µs)", "≤ 0.6×", 0.6,
            "µs"),
        Row("2.runtime", "2. loading cosmoext._runtime alone (µs)", "≤ 150 µs", 150.0, "µs",
            absolute=True),
        Row("3.ext", "3. ujson cold import, ext file evicted (µs)", "≤ 0.8×", 0.8, "µs"),
        Row("3.libs", "3. ujson cold import, ext + newly mapped libs evicted (µs)", "≤ 0.8×",
            0.8, "µs"),
        Row("4.file", "4. ujson.cosmoext file vs stripped .so (bytes)", "≤ 2×", 2.0, "bytes"),
        Row("4.image", "4. ujson largest image vs stripped .so (bytes)", "≤ 2×", 2.0, "bytes"),
        Row("2.shared", "2. ujson first import, cxx-runtime=shared (µs)", "≤ 0.6×", 0.6, "µs"),
        Row("4.shared", "4. ujson.cosmoext file, cxx-runtime=shared, vs stripped .so (bytes)",
            "≤ 2×", 2.0, "bytes"),
        Row("5.create", "5. greenlet create+run (Ir/op)", "≤ 1.000", 1.0, "Ir/op"),
        Row("5.switch", "5. greenlet switch pair (Ir/op)", "≤ 1.000", 1.0, "Ir/op"),
        Row("6.ujson", "6. ujson import, embed vs python3.11 .so (µs)", "≤ 0.7×", 0.7, "µs"),
        Row("6.cx_tables", "6. cx_tables import, embed vs python3.11 .so (µs)", "≤ 0.7×", 0.7,
            "µs"),
        Row("7.cx_tables", "7. cx_tables import syscalls", "≤ 1 (≤ dlopen's)", 1.0, "syscalls"),
        Row("7.ujson", "7. ujson import syscalls", "≤ 1 (≤ dlopen's)", 1.0, "syscalls"),
    ]


NEEDS_PYPI = {"2.ujson", "3.ext", "3.libs", "4.file", "4.image", "5.create", "5.switch",
              "6.ujson", "7.ujson", "2.shared", "4.shared"}


def measure(bench: Bench, rows: list[Row], offline: bool) -> None:
    by = {r.key: r for r in rows}
    steps: list[tuple[list[str], Callable[[], None]]] = [
        (["1.cx_tables"], lambda: bench.row1("cx_tables", by["1.cx_tables"])),
        (["1.cx_state"], lambda: bench.row1("cx_state", by["1.cx_state"])),
        (["2.runtime"], lambda: bench.row2_runtime(by["2.runtime"])),
        (["6.cx_tables"], lambda: bench.row6("cx_tables", by["6.cx_tables"])),
        (["7.cx_tables"], lambda: bench.row7("cx_tables", by["7.cx_tables"])),
        (["2.ujson"], lambda: bench.row2(by["2.ujson"])),
        (["3.ext", "3.libs"], lambda: bench.row3((by["3.ext"], by["3.libs"]))),
        (["4.file", "4.image"], lambda: bench.row4(by["4.file"], by["4.image"])),
        (["2.shared"], lambda: bench.row2(by["2.shared"], kind="shared")),
        (["4.shared"], lambda: bench.row4(by["4.shared"], kind="shared")),
        (["5.create", "5.switch"], lambda: bench.row5((by["5.create"], by["5.switch"]))),
        (["6.ujson"], lambda: bench.row6("ujson", by["6.ujson"])),
        (["7.ujson"], lambda: bench.row7("ujson", by["7.ujson"])),
    ]
    for keys, step in steps:
        if offline and NEEDS_PYPI & set(keys):
            for k in keys:
                by[k].error = "not measured: --offline (needs PyPI)"
            continue
        log(f"measuring {', '.join(keys)}")
        t0 = time.perf_counter()
        try:
            step()
        except (Exception, SystemExit) as exc:  # one broken row must not hide the others
            msg = str(exc).strip().splitlines()
            for k in keys:
                by[k].error = "failed: " + (msg[0] if msg else type(exc).__name__)
            log(f"{', '.join(keys)} failed:\n{traceback.format_exc()}")
        log(f"  {', '.join(keys)}: {time.perf_counter() - t0:.0f} s")


# -- machine and report ----------------------------------------------------------

def first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    lines = (p.stdout or p.stderr).strip().splitlines()
    return lines[0] if lines else "not available"


def machine(bench: Bench, offline: bool) -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    osname = platform.system()
    if Path("/etc/os-release").exists():
        rel = dict(ln.split("=", 1) for ln in Path("/etc/os-release").read_text().splitlines()
                   if "=" in ln)
        osname = rel.get("PRETTY_NAME", osname).strip('"')
    version = "import sys; print(sys.version.replace(chr(10), ' '))"
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": f"{cpu}, {os.cpu_count()} CPUs",
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "os": osname,
        "host python": f"{sys.executable}: {sys.version.splitlines()[0]}",
        "debian python": first_line([str(DEBIAN), "-c", version]),
        "embed interpreter": first_line([*bench.embed, "-c", version]),
        "gcc": first_line([os.environ.get("CC", "gcc"), "--version"]),
        "valgrind": first_line(["valgrind", "--version"]),
        "strace": first_line(["strace", "-V"]),
        "commit": commit + (" (with uncommitted changes)" if dirty not in ("", "not available")
                            else ""),
    }


def render(report: dict[str, Any], rows: list[Row]) -> str:
    meta = report["meta"]
    out = [BEGIN, "", "## Results of `benchmarks/run.py`", "",
           f"Generated by `python3 benchmarks/run.py{meta['argv']}` on {meta['date']}, commit "
           f"{meta['machine']['commit']}; {meta['rounds']} paired rounds per timed row "
           f"(+1 discarded); wall time of the run {meta['wall_s']:.0f} s. Ratios are "
           "cosmoext/native, the median of the per-round paired ratios; lower is better. "
           "The method of each row is in the docstring of `benchmarks/run.py`.", "",
           "| measure | cosmoext | native | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.error:
            out.append(f"| {r.measure} | {r.error} | | | {r.goal} | — |")
            continue
        ratio = "—" if r.ratio is None else (
            f"{r.ratio:.3f}" if r.unit == "Ir/op" else f"{r.ratio:.2f}")
        met = {None: "—", True: "yes", False: "**no**"}[r.met]
        out.append(f"| {r.measure} | {fmt(r.cosmoext, r.unit)} | {fmt(r.native, r.unit)} | "
                   f"{ratio} | {r.goal} | {met} |")
    out += ["", "Details (IQR = p25..p75; n = paired rounds):", ""]
    for r in rows:
        if r.error:
            continue
        d = r.data
        parts = []
        if "ratio_p25" in d:
            parts.append(f"ratio IQR {d['ratio_p25']:.2f}..{d['ratio_p75']:.2f}")
        if "native_p25" in d:
            parts.append(f"cosmoext IQR {fmt(d['cosmoext_p25'], r.unit)}.."
                         f"{fmt(d['cosmoext_p75'], r.unit)}, native IQR "
                         f"{fmt(d['native_p25'], r.unit)}..{fmt(d['native_p75'], r.unit)}")
        elif "cosmoext_p25" in d:
            parts.append(f"IQR {fmt(d['cosmoext_p25'], r.unit)}..{fmt(d['cosmoext_p75'], r.unit)}")
        if "n" in d:
            parts.append(f"n = {d['n']}")
        parts.append(r.details)
        out.append(f"- **{r.measure}**: " + "; ".join(p for p in parts if p) + ".")
    out += ["", "Machine:", ""]
    out += [f"- {k}: {v}" for k, v in meta["machine"].items()]
    out += ["", END]
    return "\n".join(out)


def write_doc(path: Path, block: str) -> None:
    """Replace the marked block of PATH (or write a new file holding just it)."""
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            path.write_text(head + block + tail)
            return
        if text.strip():
            raise SystemExit(f"{path}: exists without the {BEGIN} / {END} markers; "
                             "add them where the results go")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Benchmarks\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, help="paired rounds per timed row (default 60; "
                    "5 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: few rounds, callgrind with 1/4 of the calls")
    ap.add_argument("--offline", action="store_true",
                    help="only the rows that need no PyPI download (test extensions, runtime)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                    help="markdown file to write (default docs/benchmarks.md)")
    ap.add_argument("--json", action="store_true", help="also print the report as JSON")
    ap.add_argument("--work", type=Path, help="work directory (kept; builds are reused)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 60)
    if rounds < 1:
        ap.error("--rounds must be >= 1")

    start = time.perf_counter()
    load_before = Path("/proc/loadavg").read_text().split()[0]
    root = args.work or Path(tempfile.mkdtemp(prefix="cosmoext-run-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    rows = make_rows()
    try:
        bench = Bench(root.resolve(), rounds, args.quick)
        measure(bench, rows, args.offline)
        mach = machine(bench, args.offline)
        # A shared machine: the load says how much the other processes competed.
        mach["load average (1 min)"] = (f"{load_before} at the start, "
                                        f"{Path('/proc/loadavg').read_text().split()[0]} at the "
                                        f"end, {os.cpu_count()} CPUs")
    finally:
        if args.work is None:
            shutil.rmtree(root, ignore_errors=True)
    shown = argv if argv is not None else sys.argv[1:]
    report: dict[str, Any] = {
        "meta": {"argv": "".join(f" {a}" for a in shown), "rounds": rounds,
                 "quick": args.quick, "offline": args.offline,
                 "date": datetime.datetime.now(datetime.UTC).strftime(
                     "%Y-%m-%d %H:%M UTC"),
                 "wall_s": time.perf_counter() - start, "machine": mach},
        "rows": [{**asdict(r), "met": r.met} for r in rows],
    }
    write_doc(args.out, render(report, rows))
    log(f"wrote {args.out} ({report['meta']['wall_s']:.0f} s)")
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(render(report, rows))
    failed = [r.key for r in rows if r.error and not r.error.startswith("not measured")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
