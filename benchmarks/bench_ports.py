#!/usr/bin/env python3
"""ujson and greenlet: the ``.cosmoext`` build against the native ``.so`` build of
the same release, side by side, on the same interpreter.

Builds
------
* ``cosmoext``: ``cosmoext wheel REQ`` (PIC images, what a host CPython loads;
  ``tests/support/ports.py`` does the build).
* ``native``: ``pip wheel --no-binary :all: --no-deps REQ``, i.e. setuptools with
  this CPython's sysconfig flags (``-O3 -fwrapv -g ... -fPIC``, ``dlopen``).

Both are installed (``pip install --target``) into separate directories and
every measurement runs in a fresh child of the same interpreter: this CPython
in the isolated venv of ``tests/support/ports.py`` (only cosmoext and its ``.pth``
hook in site-packages; PYTHONPATH is just the one install directory).  Every
child first imports ``cosmoext._runtime`` (also for native runs, so both are
in the same state; in the embedded/APE interpreter the runtime is built in).

Measures
--------
* **import, cold**: ``import ujson`` / ``import greenlet`` (the package, whose
  ``__init__`` imports ``_greenlet``) timed with ``perf_counter_ns`` in a fresh
  process, right after the extension files were evicted from the page cache
  (``posix_fadvise(DONTNEED)``; residency is checked with ``mincore``).  So
  the file is read from disk, as on a first launch.  The native C++ module
  also maps ``libstdc++.so.6``, a shared system library that other processes
  keep resident; it is not evicted.
* **import, warm**: the same in a fresh process with the files in the page
  cache (any later launch).  Re-importing in the same process after deleting
  it from ``sys.modules`` is not a measure for extensions: CPython keeps
  single-phase modules' state and neither dlopen nor cosmoext maps a file
  twice, so it times a dictionary lookup.
* **RSS added by the import**: ``/proc/self/smaps_rollup`` before and after
  the (warm) import: Rss and Private (clean + dirty) deltas, in KiB.  For the
  cold import also what it read from disk (``read_bytes`` of
  ``/proc/self/io``) and its major page faults.
* **throughput**: ujson ``dumps``/``loads`` of a small dict, a list of 10,000
  floats and a nested document of non-ASCII strings; greenlet switches (one
  "switch pair" = into a greenlet and back) and create+run+finish.  Wall
  time: per kernel, best of 5 timed batches of >= 50 ms each, in ns/op.
* **instructions** (``--callgrind``, on by default when valgrind exists):
  ``valgrind --tool=callgrind`` counts the instructions (Ir) of each kernel,
  as (Ir of setup + warm-up + N calls - Ir of setup + warm-up) / N, with
  ``PYTHONHASHSEED=0``.  Deterministic, unlike wall time on a shared machine.
  The loop and call overhead in Python is included on both sides alike.
* **file size** per architecture image (``cosmoext inspect``), against the
  ``.so`` as built and stripped (``strip --strip-unneeded``); and the
  address space an image or a ``.so``'s PT_LOAD segments span.  With the
  aarch64 cross compilers installed, also a fat ``x86_64,aarch64`` build's
  per-architecture image sizes (there is no native aarch64 build to compare).
* **build time**: wall time of ``cosmoext wheel`` and ``pip wheel``, each
  including its isolated build environment (one sample each).

Every timed measure runs in rounds that alternate the two kinds (ABBA...), so
drift hits both alike.  Ratios are cosmoext/native: ``ratio`` is the median
of the per-round paired ratios and ``IQR`` their p25..p75; for throughput a
ratio is of times (ns/op), so **lower is better everywhere** except that the
throughput target is stated as native/cosmoext speed >= 0.98, i.e. time
ratio <= 1/0.98 = 1.020.

Usage: ``python3 benchmarks/bench_ports.py [--rounds N] [--no-callgrind] [--no-fat] [--json]
[--work DIR]``.  A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from support import ports  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary  # noqa: E402

KINDS = ("cosmoext", "native")
PORTS = {
    # requirement, import name, extension modules (file stems to check/evict)
    "ujson": ("ujson==6.1.0", "ujson", ["ujson"]),
    "greenlet": ("greenlet==3.5.6", "greenlet", ["greenlet._greenlet"]),
}
IMPORT_TARGET = 1.0  # import time <= 1.0x dlopen
SPEED_TARGET = 0.98  # throughput >= 0.98x native

# The workloads, shared by the wall-time and the callgrind children.
KERNELS = r'''
import random


def kernels(module):
    if module == "ujson":
        import ujson
        rnd = random.Random(1234)
        words = ["naïve", "café", "日本語のテキスト", "Ελληνικά", "emoji 😀🎉", 'tab\t"quote"',
                 "plain ascii words", "Ünïcödé ß", "中文字符串", "\\backslash/"]
        docs = {
            "small dict": {"id": 12345, "name": "cosmoext", "active": True, "ratio": 0.625,
                           "tags": ["a", "bb", "ccc"], "parent": None},
            "10k floats": [rnd.uniform(-1e6, 1e6) for _ in range(10000)],
            "nested unicode": {"users": [
                {"name": f"user {i} {words[i % len(words)]}",
                 "bio": " ".join(rnd.choice(words) for _ in range(12)),
                 "tags": [rnd.choice(words) for _ in range(4)],
                 "meta": {"level": i % 7, "path": ["a", "b", words[i % 3]]}}
                for i in range(300)]},
        }
        out = {}
        for name, doc in docs.items():
            text = ujson.dumps(doc)
            assert ujson.loads(text) == doc
            out[f"dumps {name}"] = (lambda d=doc: ujson.dumps(d))
            out[f"loads {name}"] = (lambda t=text: ujson.loads(t))
        return out
    if module == "greenlet":
        import greenlet
        main = greenlet.getcurrent()

        def pingpong():
            while True:
                main.switch()

        g = greenlet.greenlet(pingpong)

        def noop():
            pass

        return {"switch pair": g.switch,
                "create+run": lambda: greenlet.greenlet(noop).switch()}
    raise SystemExit(f"no kernels for {module}")
'''

CHILD_IMPORT = r"""
import gc, importlib, importlib.machinery, json, sys, time
kind, name, ext, where = sys.argv[1:5]

def mem():
    d = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            p = line.split()
            if len(p) == 3 and p[2] == "kB":
                d[p[0].rstrip(":")] = int(p[1])
    return d

def io():
    with open("/proc/self/io") as f:
        return int(dict(ln.split(": ") for ln in f.read().splitlines())["read_bytes"])

import resource
t = time.perf_counter_ns()
import cosmoext._runtime as rt
runtime_ns = time.perf_counter_ns() - t
sys.path.insert(0, where)
importlib.invalidate_caches()
importlib.machinery.PathFinder.find_spec("_cosmoext_bench_absent_", [where])
gc.collect()
gc.disable()
m0 = mem()
io0, flt0 = io(), resource.getrusage(resource.RUSAGE_SELF).ru_majflt
t0 = time.perf_counter_ns()
importlib.import_module(name)
t1 = time.perf_counter_ns()
io1, flt1 = io(), resource.getrusage(resource.RUSAGE_SELF).ru_majflt
m1 = mem()
origin = sys.modules[ext].__spec__.origin
if not origin.endswith(".cosmoext" if kind == "cosmoext" else ".so"):
    raise SystemExit(f"{ext} came from {origin}, expected a {kind} build")
priv = lambda m: m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
out = {"import_ns": t1 - t0, "runtime_import_ns": runtime_ns,
       "rss_kb": m1["Rss"] - m0["Rss"], "private_kb": priv(m1) - priv(m0),
       "disk_kb": (io1 - io0) / 1024, "majflt": flt1 - flt0}
if kind == "cosmoext":
    out["stats"] = rt.load_stats()
print(json.dumps(out))
"""

CHILD_SPEED = KERNELS + r"""
import gc, json, sys, time
import cosmoext._runtime
where, module, min_batch = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path.insert(0, where)
res = {}
for name, fn in kernels(module).items():
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_batch:
            break
        n *= 2 if dt < min_batch / 4 else 1 + int(min_batch / max(dt, 1e-9))
    best = dt / n
    gc.disable()
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    gc.enable()
    res[name] = best * 1e9
print(json.dumps(res))
"""

CHILD_IR = KERNELS + r"""
import sys
import cosmoext._runtime
where, module, kernel, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, where)
fn = kernels(module)[kernel]
fn()  # warm-up: lazy binding, first-use initialisation, caches
for _ in range(n):
    fn()
"""
IR_CALLS = {"dumps small dict": 3000, "loads small dict": 3000, "dumps 10k floats": 20,
            "loads 10k floats": 20, "dumps nested unicode": 20, "loads nested unicode": 20,
            "switch pair": 20000, "create+run": 5000}


def log(line: str) -> None:
    print(f"bench_ports: {line}", file=sys.stderr, flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                         + proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


# -- page cache ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def resident_fraction(path: Path) -> float:
    """Share of PATH's pages in the page cache (mincore on a fresh mapping)."""
    size = path.stat().st_size
    if size == 0:
        return 0.0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            return -1.0
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = ctypes.create_string_buffer(pages)
        rc = _libc.mincore(ctypes.c_void_p(addr), size, vec)
        _libc.munmap(ctypes.c_void_p(addr), size)
        if rc != 0:
            return -1.0
        return sum(b & 1 for b in vec.raw) / pages
    finally:
        os.close(fd)


def evict(paths: list[Path]) -> float:
    """Drop PATHS from the page cache; returns the largest resident share left."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages (a fresh install) are not dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return max(resident_fraction(p) for p in paths)


# -- builds -------------------------------------------------------------------

def native_wheel(req: str, dest: Path) -> tuple[Path, float]:
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-binary", ":all:", "--no-deps",
         "--no-cache-dir", "--disable-pip-version-check", "-w", str(dest), req])
    seconds = time.perf_counter() - t0
    (whl,) = dest.glob("*.whl")
    return whl, seconds


def install(whl: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
         "--disable-pip-version-check", "--root-user-action=ignore", "--target", str(target),
         str(whl)])


def ext_files(target: Path, exts: list[str], kind: str) -> list[Path]:
    out = []
    for ext in exts:
        *pkg, last = ext.split(".")
        d = target.joinpath(*pkg)
        found = sorted(d.glob(f"{last}.cosmoext" if kind == "cosmoext" else f"{last}.*so"))
        if len(found) != 1:
            raise SystemExit(f"{d}: expected one {kind} build of {last}, found {found}")
        out.append(found[0])
    return out


def so_load_span(path: Path) -> int:
    """Bytes of address space the PT_LOAD segments of a shared object span."""
    out = run(["readelf", "-lW", str(path)]).stdout
    spans = [(int(m.group(1), 16), int(m.group(2), 16))
             for m in re.finditer(r"^\s*LOAD\s+\S+\s+(0x[0-9a-f]+)\s+\S+\s+\S+\s+(0x[0-9a-f]+)",
                                  out, re.M)]
    return max(v + s for v, s in spans) - min(v for v, _ in spans) if spans else 0


def sizes(files: dict[str, list[Path]], work: Path) -> dict[str, Any]:
    cx = []
    for f in files["cosmoext"]:
        info = json.loads(run([sys.executable, "-m", "cosmoext", "inspect", "--json",
                               str(f)]).stdout)
        images = [{"arch": im["arch"], "vsize": im["vsize"],
                   "bytes": sum(s["filesz"] for s in im["segments"])}
                  for im in info["images"]]
        cx.append({"file": f.name, "file_bytes": f.stat().st_size, "images": images})
    nat = []
    for f in files["native"]:
        stripped = work / ("stripped-" + f.name)
        shutil.copy(f, stripped)
        run(["strip", "--strip-unneeded", str(stripped)])
        nat.append({"file": f.name, "file_bytes": f.stat().st_size,
                    "stripped_bytes": stripped.stat().st_size, "vsize": so_load_span(f)})
    return {"cosmoext": cx, "native": nat}


def fat_sizes(req: str, exts: list[str], root: Path) -> list[dict[str, Any]]:
    """Per-architecture image sizes of a fat x86_64+aarch64 build (cross compilers)."""
    import zipfile

    dest = root / "fat" / req
    shutil.rmtree(dest, ignore_errors=True)
    run([sys.executable, "-m", "cosmoext", "wheel", req, "-w", str(dest), "-C",
         "arch=x86_64,aarch64"])
    (whl,) = dest.glob("*.whl")
    out = []
    with zipfile.ZipFile(whl) as z:
        for ext in exts:
            member = "/".join(ext.split(".")) + ".cosmoext"
            f = dest / Path(member).name
            f.write_bytes(z.read(member))
            info = json.loads(run([sys.executable, "-m", "cosmoext", "inspect", "--json",
                                   str(f)]).stdout)
            out.append({"file": member, "file_bytes": f.stat().st_size,
                        "images": [{"arch": im["arch"], "vsize": im["vsize"],
                                    "bytes": sum(s["filesz"] for s in im["segments"])}
                                   for im in info["images"]]})
    return out


# -- measurements -------------------------------------------------------------

def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def measure_imports(py: Path, port: str, targets: dict[str, Path],
                    files: dict[str, list[Path]], rounds: int) -> dict[str, Any]:
    _, name, exts = PORTS[port]
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        k: {"cold": [], "warm": []} for k in KINDS}
    left = []
    env = child_env()
    for rnd in range(rounds + 1):  # round 0: warm-up, discarded
        order = KINDS if rnd % 2 == 0 else KINDS[::-1]
        for kind in order:
            args = [str(py), "-c", CHILD_IMPORT, kind, name, exts[0], str(targets[kind])]
            left.append(evict(files[kind]))
            cold = json.loads(run(args, env=env).stdout.strip().splitlines()[-1])
            warm = json.loads(run(args, env=env).stdout.strip().splitlines()[-1])
            if rnd:
                samples[kind]["cold"].append(cold)
                samples[kind]["warm"].append(warm)
    out: dict[str, Any] = {"evicted_resident_max": max(left)}
    for mode in ("cold", "warm"):
        per = {k: [s["import_ns"] / 1e3 for s in samples[k][mode]] for k in KINDS}
        out[f"import_{mode}_us"] = summary(per)
    for key in ("rss_kb", "private_kb"):
        per = {k: [float(s[key]) for s in samples[k]["warm"]] for k in KINDS}
        out[key] = summary(per)
    for key in ("disk_kb", "majflt"):
        per = {k: [float(s[key]) for s in samples[k]["cold"]] for k in KINDS}
        out[f"cold_{key}"] = {k: statistics.median(v) for k, v in per.items()}
    out["runtime_import_us"] = statistics.median(
        s["runtime_import_ns"] / 1e3 for s in samples["cosmoext"]["warm"])
    stats = [s["stats"] for s in samples["cosmoext"]["warm"]]
    out["loader_phases_us"] = {k.removesuffix("_ns"): statistics.median(s[k] for s in stats) / 1e3
                               for k in stats[0] if k.endswith("_ns")}
    return out


def measure_speed(py: Path, port: str, targets: dict[str, Path], rounds: int,
                  min_batch: float) -> dict[str, Any]:
    env = child_env()
    per: dict[str, dict[str, list[float]]] = {}
    for rnd in range(rounds + 1):
        order = KINDS if rnd % 2 == 0 else KINDS[::-1]
        for kind in order:
            res = json.loads(run([str(py), "-c", CHILD_SPEED, str(targets[kind]), port,
                                  str(min_batch)], env=env).stdout.strip().splitlines()[-1])
            if rnd == 0:
                continue
            for kernel, ns in res.items():
                per.setdefault(kernel, {k: [] for k in KINDS})[kind].append(ns)
    return {kernel: summary(v) for kernel, v in per.items()}


def callgrind_ir(py: Path, target: Path, port: str, kernel: str, n: int,
                 tmp: Path) -> int:
    out = tmp / "callgrind.out"
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           str(py), "-c", CHILD_IR, str(target), port, kernel, str(n)],
                          capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise SystemExit(f"valgrind failed for {port} {kernel}:\n{proc.stderr[-3000:]}")
    m = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
    if not m:
        raise SystemExit(f"no 'Collected' line from callgrind:\n{proc.stderr[-2000:]}")
    out.unlink(missing_ok=True)
    return int(m.group(1))


def measure_ir(py: Path, port: str, targets: dict[str, Path], tmp: Path,
               scale: float = 1.0) -> dict[str, Any]:
    """Ir per call of PORT's kernels; SCALE shrinks the call counts (smoke runs)."""
    kernels = [k for k in IR_CALLS if (k.startswith(("dumps", "loads")) == (port == "ujson"))]
    res: dict[str, Any] = {}
    for kernel in kernels:
        n = max(1, int(IR_CALLS[kernel] * scale))
        per = {}
        for kind in KINDS:
            base = callgrind_ir(py, targets[kind], port, kernel, 0, tmp)
            full = callgrind_ir(py, targets[kind], port, kernel, n, tmp)
            per[kind] = (full - base) / n
        res[kernel] = {**per, "ratio": per["cosmoext"] / per["native"], "calls": n}
        log(f"  Ir {port} {kernel}: cosmoext {per['cosmoext']:.0f}, native "
            f"{per['native']:.0f}, ratio {res[kernel]['ratio']:.3f}")
    return res


# -- report -------------------------------------------------------------------

def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _verdict(ratio: float, limit: float) -> str:
    return "meets" if ratio <= limit else "MISSES"


def render(report: dict[str, Any]) -> str:
    meta = report["meta"]
    out = [f"cosmoext vs native builds: {meta['python']} ({meta['executable']}), "
           f"{meta['machine']}, {meta['cpus']} CPUs; {meta['rounds']} rounds ABBA "
           f"(+1 discarded); wall {meta['wall_s']:.0f} s", ""]
    rows = [["port", "measure", "cosmoext", "native", "ratio cx/nat", "IQR of ratios",
             "target", "verdict"]]
    for port, r in report["ports"].items():
        imp = r["import"]
        for mode in ("cold", "warm"):
            s = imp[f"import_{mode}_us"]
            rows.append([port, f"import {mode} (µs)", f"{s['cosmoext']:.0f}",
                         f"{s['native']:.0f}", f"{s['ratio']:.3f}",
                         f"{s['ratio_p25']:.3f}..{s['ratio_p75']:.3f}", "<= 1.00",
                         _verdict(s["ratio"], IMPORT_TARGET)])
        for key, label in (("rss_kb", "RSS added (KiB)"), ("private_kb", "private added (KiB)")):
            s = imp[key]
            rows.append([port, label, f"{s['cosmoext']:.0f}", f"{s['native']:.0f}",
                         f"{s['cosmoext'] / s['native']:.2f}" if s["native"] else "-",
                         "", "", ""])
        for key, label in (("cold_disk_kb", "disk read, cold (KiB)"),
                           ("cold_majflt", "major faults, cold")):
            s = imp[key]
            rows.append([port, label, f"{s['cosmoext']:.0f}", f"{s['native']:.0f}",
                         f"{s['cosmoext'] / s['native']:.2f}" if s["native"] else "-",
                         "", "", ""])
        for kernel, s in r["speed"].items():
            rows.append([port, f"{kernel} (ns/op)", f"{s['cosmoext']:.0f}", f"{s['native']:.0f}",
                         f"{s['ratio']:.3f}", f"{s['ratio_p25']:.3f}..{s['ratio_p75']:.3f}",
                         "<= 1.020", _verdict(s["ratio"], 1 / SPEED_TARGET)])
        for kernel, s in r.get("ir", {}).items():
            rows.append([port, f"{kernel} (Ir/op)", f"{s['cosmoext']:.0f}", f"{s['native']:.0f}",
                         f"{s['ratio']:.3f}", "(exact)", "<= 1.020",
                         _verdict(s["ratio"], 1 / SPEED_TARGET)])
        sz = r["sizes"]
        for cx, nat in zip(sz["cosmoext"], sz["native"], strict=True):
            for im in cx["images"]:
                rows.append([port, f"{im['arch']} image bytes (.so stripped)",
                             f"{im['bytes']}", f"{nat['stripped_bytes']}",
                             f"{im['bytes'] / nat['stripped_bytes']:.2f}", "", "", ""])
            rows.append([port, "file bytes (.so as built)", f"{cx['file_bytes']}",
                         f"{nat['file_bytes']}", f"{cx['file_bytes'] / nat['file_bytes']:.2f}",
                         "", "", ""])
            rows.append([port, "address space bytes", f"{cx['images'][0]['vsize']}",
                         f"{nat['vsize']}", f"{cx['images'][0]['vsize'] / nat['vsize']:.2f}",
                         "", "", ""])
        for fat in r.get("fat", []):
            for im in fat["images"]:
                rows.append([port, f"{im['arch']} image bytes (fat file)", f"{im['bytes']}",
                             "-", "", "", "", ""])
            rows.append([port, "fat file bytes (x86_64+aarch64)", f"{fat['file_bytes']}",
                         "-", "", "", "", ""])
        b = r["build_s"]
        rows.append([port, "build time (s, 1 sample)", f"{b['cosmoext']:.1f}",
                     f"{b['native']:.1f}", f"{b['cosmoext'] / b['native']:.2f}", "", "", ""])
    out.append(table(rows))
    out.append("")
    for port, r in report["ports"].items():
        imp = r["import"]
        ph = ", ".join(f"{k} {v:.0f}" for k, v in imp["loader_phases_us"].items())
        out.append(f"{port}: loader phases (median µs, warm): {ph}; loading cosmoext._runtime "
                   f"itself (host mode only, once per process): "
                   f"{imp['runtime_import_us']:.0f} µs; page cache after eviction: "
                   f"{100 * imp['evicted_resident_max']:.0f}% resident at most")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--ports", nargs="+", default=list(PORTS), choices=list(PORTS))
    ap.add_argument("--rounds", type=int, default=21, help="import rounds (default 21)")
    ap.add_argument("--speed-rounds", type=int, default=7,
                    help="throughput rounds (default 7)")
    ap.add_argument("--min-batch", type=float, default=0.05,
                    help="seconds per timed batch (default 0.05)")
    ap.add_argument("--no-callgrind", dest="callgrind", action="store_false")
    ap.add_argument("--no-fat", dest="fat", action="store_false",
                    help="skip the x86_64+aarch64 build (sizes per architecture)")
    ap.add_argument("--work", type=Path, help="work directory (kept)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.callgrind and shutil.which("valgrind") is None:
        log("valgrind not found: no instruction counts (apt-get install valgrind)")
        args.callgrind = False

    start = time.perf_counter()
    root = args.work or Path(tempfile.mkdtemp(prefix="cosmoext-bench-ports-", dir="/var/tmp"))
    work = ports.Work(root / "ports")
    py = work.host_python()
    report: dict[str, Any] = {"ports": {}}
    try:
        for port in args.ports:
            req, _, exts = PORTS[port]
            log(f"{port}: building ({req}) with cosmoext wheel and with pip wheel")
            cx_whl = work.wheel(req, "pic")
            built = [b["seconds"] for b in work.builds if b["wheel"] == str(cx_whl)]
            nat_whl, nat_s = native_wheel(req, root / "native" / port)
            targets = {"cosmoext": root / "t-cx" / port, "native": root / "t-native" / port}
            install(cx_whl, targets["cosmoext"])
            install(nat_whl, targets["native"])
            files = {k: ext_files(targets[k], exts, k) for k in KINDS}
            r: dict[str, Any] = {"build_s": {"cosmoext": built[0] if built else float("nan"),
                                             "native": nat_s},
                                 "files": {k: [str(f) for f in v] for k, v in files.items()}}
            r["sizes"] = sizes(files, root)
            if args.fat and shutil.which("aarch64-linux-gnu-g++"):
                log(f"{port}: a fat x86_64+aarch64 build, for the per-architecture sizes")
                r["fat"] = fat_sizes(req, exts, root)
            log(f"{port}: import times ({args.rounds} rounds)")
            r["import"] = measure_imports(py, port, targets, files, args.rounds)
            log(f"{port}: throughput ({args.speed_rounds} rounds)")
            r["speed"] = measure_speed(py, port, targets, args.speed_rounds, args.min_batch)
            if args.callgrind:
                log(f"{port}: instruction counts (callgrind)")
                r["ir"] = measure_ir(py, port, targets, root)
            report["ports"][port] = r
    finally:
        if args.work is None:
            shutil.rmtree(root, ignore_errors=True)
    report["meta"] = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "executable": sys.executable, "machine": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(), "rounds": args.rounds, "speed_rounds": args.speed_rounds,
        "wall_s": time.perf_counter() - start,
    }
    print(json.dumps(report, indent=1) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
