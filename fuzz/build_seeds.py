"""Build the fuzzer's seed corpus: test-extension images in every flavour.

    python3 fuzz/build_seeds.py OUTDIR [--quick]

x86_64 PIC and non-PIC, aarch64 PIC and non-PIC, fat (x86_64+aarch64) PIC,
and cosmocc images when ``cosmocc`` is on PATH (COSMO_PYTHON defaults to
/opt/cosmo/python).  Files are named ``NAME-VARIANT.bin`` (not ``.cosmoext``:
the corpus is never imported).  Images are build outputs: they are rebuilt at
test time, never committed; only minimized findings live in fuzz/regressions/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.build import build_ext  # noqa: E402
from support.extensions import cflags, sources  # noqa: E402

# Small modules that between them use C, C++ (exceptions, .eh_frame, init
# arrays), thread-locals (dynamic TLS, TLS descriptors on aarch64) and
# multi-phase init.
SEED_MODULES = ["cx_state", "cx_tls", "cx_cpp", "cx_multiphase", "cx_tls_cpp"]
QUICK_MODULES = ["cx_state", "cx_tls"]

# variant -> (pic, arch, toolchain)
VARIANTS = {
    "x86_64-pic": (True, ["x86_64"], "gnu"),
    "x86_64-nopic": (False, ["x86_64"], "gnu"),
    "aarch64-pic": (True, ["aarch64"], "gnu"),
    "aarch64-nopic": (False, ["aarch64"], "gnu"),
    "fat-pic": (True, ["x86_64", "aarch64"], "gnu"),
}
COSMO_VARIANTS = {"cosmo-nopic": (False, None, "cosmocc")}


def build(out: Path, *, quick: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    variants = dict(VARIANTS)
    if shutil.which("cosmocc"):
        os.environ.setdefault("COSMO_PYTHON", "/opt/cosmo/python")
        variants.update(COSMO_VARIANTS)
    modules = QUICK_MODULES if quick else SEED_MODULES
    jobs = [(m, v) for m in modules for v in variants]
    made: list[Path] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:

        def one(job: tuple[str, str]) -> None:
            mod, var = job
            pic, arch, toolchain = variants[var]
            img = Path(tmp) / f"{mod}-{var}.cosmoext"
            try:
                build_ext(name=mod, sources=sources(mod), output=str(img), pic=pic, arch=arch,
                          cflags=cflags(mod), toolchain=toolchain)
            except Exception as e:  # a toolchain may lack C++: keep the others
                failed.append(f"{mod}-{var}: {e}")
                return
            dst = out / f"{mod}-{var}.bin"
            shutil.copyfile(img, dst)
            made.append(dst)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(one, jobs))
    for f in failed:
        print("seed not built:", f, file=sys.stderr)
    return sorted(made)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick", action="store_true", help="two modules only")
    a = ap.parse_args()
    made = build(a.out, quick=a.quick)
    total = sum(p.stat().st_size for p in made)
    print(f"{len(made)} seeds, {total} bytes in {a.out}")
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
