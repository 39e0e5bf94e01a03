"""Measure an interpreter made by ``cosmoext embed`` against the machine's python.

Prints: executable size; start-up time (``-c pass`` and ``-S -c pass``),
median of N interleaved runs of each, as a ratio embed/machine; and which
standard-library C modules the embedded build lacks (the build's shared
modules in lib-dynload that are not builtins, and so cannot be imported
without dlopen).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--python", default=sys.executable, help="the machine's python")
    ap.add_argument("--embed", help="an existing embedded interpreter (default: build one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exe = args.embed
        if not exe:
            exe = os.path.join(tmp, "python-cx")
            subprocess.run([sys.executable, "-m", "cosmoext", "embed", "-o", exe], check=True,
                           stdout=subprocess.DEVNULL)
        rows = {}
        for label, extra in (("-c pass", []), ("-S -c pass", ["-S"])):
            a, b = [], []
            for _ in range(args.rounds):  # interleaved: A B A B ...
                a.append(_time([exe, *extra, "-c", "pass"]))
                b.append(_time([args.python, *extra, "-c", "pass"]))
            ma, mb = statistics.median(a), statistics.median(b)
            q = statistics.quantiles([x / y for x, y in zip(a, b, strict=True)], n=4)
            rows[label] = {"embed_ms": ma * 1e3, "machine_ms": mb * 1e3, "ratio": ma / mb,
                           "ratio_p25": q[0], "ratio_p75": q[2]}
        out = subprocess.run(
            [exe, "-c", "import sys, os, sysconfig; print(sys.version.split()[0]);"
             "print(' '.join(sys.builtin_module_names));"
             "print(os.path.join(sysconfig.get_path('stdlib'), 'lib-dynload'))"],
            capture_output=True, text=True, check=True).stdout.splitlines()
        version, builtins, dynload = out[0], set(out[1].split()), out[2]
        shared = sorted({p.name.split(".")[0] for p in Path(dynload).glob("*.so")})
        lacking = [m for m in shared if m not in builtins and not m.startswith(("_test", "xx"))]
        result = {
            "embed": exe, "embed_version": version, "machine_python": args.python,
            "machine_version": subprocess.run(
                [args.python, "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True, text=True, check=True).stdout.strip(),
            "size_bytes": os.path.getsize(exe),
            "startup": rows, "lacking_c_modules": lacking,
            "machine_python_shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"embedded interpreter: {result['size_bytes'] / 2**20:.1f} MiB, Python {version}; "
          f"machine python {result['machine_version']} ({args.python})")
    for label, r in rows.items():
        print(f"start-up {label:12} embed {r['embed_ms']:6.1f} ms  machine {r['machine_ms']:6.1f} "
              f"ms  ratio {r['ratio']:.2f} "
              f"(paired p25..p75 {r['ratio_p25']:.2f}..{r['ratio_p75']:.2f})")
    print(f"stdlib C modules it lacks ({len(lacking)}): {', '.join(lacking)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
