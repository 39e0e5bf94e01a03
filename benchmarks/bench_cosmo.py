"""ujson and greenlet inside the real APE python.com, against Debian's python3.11
with native wheels of the same sdists.

Builds (in a work directory): ``python.com`` with ``cosmoext embed --toolchain
cosmocc``; fat ``+cosmo`` wheels of ujson 6.1.0 and greenlet 3.5.6 with
``cosmoext wheel -C toolchain=cosmocc``; native wheels of the same sdists
with ``pip wheel --no-binary :all:``.  Then, side by side and alternating
(A B A B ...), each interpreter runs the same kernels in a fresh process and
reports the best of several timing loops; the table gives ns per operation
and the ratio python.com / Debian (lower is better), median over rounds.  The
pure-Python row runs no extension code: it is the two interpreters' own
difference, which the extension rows include.

Needs cosmocc (``COSMOCC`` or ``PATH``) and ``COSMO_PYTHON``; x86_64 only
(the aarch64 half runs under qemu, whose timings say nothing).

Usage: ``python3 benchmarks/bench_cosmo.py [--rounds N] [--work DIR] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

UJSON, GREENLET = "ujson==6.1.0", "greenlet==3.5.6"
DEBIAN = "/usr/bin/python3.11"

KERNELS = r"""
import json, sys, time
import ujson, greenlet
doc = {"id": 12345, "name": "cosmoext", "tags": ["a", "b", "c"] * 5,
       "nested": [{"x": i, "y": i * 0.5, "s": "text %d" % i} for i in range(40)]}
text = ujson.dumps(doc)

def best(fn, n, reps=7):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter_ns(); fn(n); out.append((time.perf_counter_ns() - t0) / n)
    return min(out)

def dumps(n):
    for _ in range(n):
        ujson.dumps(doc)

def loads(n):
    for _ in range(n):
        ujson.loads(text)

def switch(n):
    def body():
        while True:
            greenlet.getcurrent().parent.switch()
    g = greenlet.greenlet(body)
    for _ in range(n):
        g.switch()

def create(n):
    for _ in range(n):
        greenlet.greenlet(lambda: None).switch()

def python_only(n):  # the interpreters alone: no extension code
    for i in range(n):
        d = {"k%d" % j: [j, str(j)] for j in range(20)}
        sorted(d.items(), key=lambda kv: kv[1][1])

print(json.dumps({"ujson.dumps": best(dumps, 2000), "ujson.loads": best(loads, 2000),
                  "greenlet.switch": best(switch, 50000),
                  "greenlet.create+run": best(create, 20000),
                  "pure Python (baseline)": best(python_only, 2000)}))
"""


def run(cmd: list[str], **kw) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode:
        sys.exit(f"bench_cosmo: {' '.join(map(str, cmd))} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def prepare(work: Path) -> tuple[list[str], Path, Path]:
    com = work / "python.com"
    if not com.exists():
        run([sys.executable, "-m", "cosmoext", "embed", "--toolchain", "cosmocc", "--arch",
             "x86_64", "-o", com])
    sites = {}
    for kind in ("cosmo", "native"):
        site = work / f"site-{kind}"
        sites[kind] = site
        if site.exists():
            continue
        wheels = work / f"wheels-{kind}"
        for req in (UJSON, GREENLET):
            if kind == "cosmo":
                run([sys.executable, "-m", "cosmoext", "wheel", req, "-w", wheels,
                     "-C", "toolchain=cosmocc", "-C", "arch=x86_64"])
            else:
                run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-binary",
                     ":all:", "-w", wheels, req])
        run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site,
             *sorted(wheels.glob("*.whl"))])
    return ["sh", str(com)], sites["cosmo"], sites["native"]


def measure(cmd: list[str], site: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(site)
    return json.loads(run([*cmd, "-c", KERNELS], env=env, cwd="/"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-cosmo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        com, cosmo_site, native_site = prepare(work)
        a, b = [], []
        for _ in range(args.rounds):
            a.append(measure(com, cosmo_site))
            b.append(measure([DEBIAN], native_site))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rows = {}
    for k in a[0]:
        ratios = [x[k] / y[k] for x, y in zip(a, b, strict=True)]
        rows[k] = {"python.com ns": statistics.median(x[k] for x in a),
                   "debian ns": statistics.median(y[k] for y in b),
                   "ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'kernel':22} {'python.com':>11} {'Debian':>9} {'ratio':>7}  (min-max over "
          f"{args.rounds} paired rounds)")
    for k, r in rows.items():
        print(f"{k:22} {r['python.com ns']:9.0f}ns {r['debian ns']:7.0f}ns {r['ratio']:7.3f}  "
              f"({r['min']:.3f}-{r['max']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
