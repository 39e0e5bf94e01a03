"""The loader under libFuzzer (fuzz/fuzz_load.c, built by fuzz/build.sh with
-fsanitize=fuzzer,address,undefined): every seed and every saved finding
(fuzz/regressions/) runs clean, then 60 s of fuzzing finds nothing.

The seeds are the test extensions' images in every flavour
(fuzz/build_seeds.py: x86_64 and aarch64, PIC and non-PIC, fat, cosmocc when
present), rebuilt here: images are build outputs, never committed.
Needs clang with libFuzzer (Debian: clang-19 and libclang-rt-19-dev)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
REGRESSIONS = FUZZ / "regressions"

pytestmark = pytest.mark.slow


def _clang() -> str | None:
    return shutil.which(os.environ.get("FUZZ_CC", "")) or shutil.which("clang-19") or \
        shutil.which("clang")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1", **extra)
    return env


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = _clang()
    # .ci/setup.sh installs both: a missing one is a failure, not a skip.
    assert cc is not None, "no clang on PATH (.ci/setup.sh installs clang-19)"
    tmp = tmp_path_factory.mktemp("fuzz-build")
    probe = tmp / "probe.c"
    probe.write_text("int LLVMFuzzerTestOneInput(const char *d, unsigned long n)"
                     " { (void)d; (void)n; return 0; }\n")
    p = subprocess.run([cc, "-fsanitize=fuzzer,address,undefined", str(probe),
                        "-o", str(tmp / "probe")], capture_output=True, text=True)
    assert p.returncode == 0, (f"{cc} cannot link libFuzzer (.ci/setup.sh installs "
                               f"libclang-rt-19-dev): {p.stderr.strip()[-300:]}")
    out = tmp / "fuzz_load"
    p = subprocess.run(["sh", str(FUZZ / "build.sh"), str(out)], capture_output=True, text=True,
                       env=dict(os.environ, FUZZ_CC=cc))
    assert p.returncode == 0, p.stdout + p.stderr
    return out


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    spec = importlib.util.spec_from_file_location("cx_build_seeds", FUZZ / "build_seeds.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    made = mod.build(tmp_path_factory.mktemp("fuzz-seeds"))
    names = {p.name for p in made}
    # both machines, PIC and non-PIC, fat: the ones that must always be there
    for want in ("cx_state-x86_64-pic.bin", "cx_state-x86_64-nopic.bin",
                 "cx_state-aarch64-pic.bin", "cx_state-aarch64-nopic.bin",
                 "cx_state-fat-pic.bin"):
        assert want in names, sorted(names)
    return made


def _no_reports(text: str) -> None:
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: libFuzzer", "BUG:"):
        assert marker not in text, text[-4000:]


def test_seeds_and_regressions_run_clean(harness: Path, seeds: list[Path]) -> None:
    """Each input once (no mutation), at digest level 0 (what the fuzzer uses)
    and 2 (the seeds are intact, so they must load)."""
    inputs = seeds + sorted(p for p in REGRESSIONS.iterdir() if p.is_file()
                            and p.name != "README.md")
    for level in ("0", "2"):
        p = subprocess.run([str(harness), *map(str, inputs)], capture_output=True, text=True,
                           timeout=600, env=_env(CX_FUZZ_DIGESTS=level, CX_FUZZ_VERBOSE="1"))
        assert p.returncode == 0, p.stderr[-4000:]
        _no_reports(p.stderr)
        outcomes = re.findall(r"^cx_load: (.*)$", p.stderr, re.M)
        assert len(outcomes) == len(inputs), p.stderr[-4000:]
        # the success path (mapping, fixups, unload) ran: x86_64 PIC images load
        assert outcomes.count("loaded") >= 3, outcomes


def test_fuzz_60_seconds(harness: Path, seeds: list[Path], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for s in seeds:
        shutil.copy(s, corpus)
    for r in REGRESSIONS.iterdir():
        if r.is_file() and r.name != "README.md":
            shutil.copy(r, corpus)
    art = tmp_path / "artifacts"
    art.mkdir()
    p = subprocess.run([str(harness), "-max_total_time=60", "-timeout=10", "-rss_limit_mb=4096",
                        "-print_final_stats=1", f"-artifact_prefix={art}/", str(corpus)],
                       capture_output=True, text=True, timeout=600, env=_env())
    found = sorted(a.name for a in art.iterdir())
    assert p.returncode == 0 and not found, (found, p.stderr[-4000:])
    _no_reports(p.stderr)
    m = re.search(r"stat::number_of_executed_units: (\d+)", p.stderr)
    assert m and int(m.group(1)) > 1000, p.stderr[-2000:]
