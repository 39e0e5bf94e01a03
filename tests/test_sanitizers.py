"""The runtime under ASan+UBSan and under valgrind memcheck.

- The whole test-extension suite (tests/test_ext_suite.py) runs in a child
  CPython whose ``cosmoext._runtime`` is built from cosmoext/runtime/ with
  -fsanitize=address,undefined (CMakeLists.txt, extra C flags; libasan is
  LD_PRELOADed since python itself is not instrumented): every test passes
  and there is no sanitizer report.
- valgrind memcheck watches a child doing 200 loads and 200 failed loads
  (corrupt, truncated, wrong-module and missing files) through the normal
  runtime: no invalid access, no definite leak.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from support.runs import EXT_SUITE, assert_all_passed

import cosmoext

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
SUPPRESSIONS = ROOT / "fuzz" / "valgrind-python.supp"
REPORT_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

pytestmark = pytest.mark.slow


def _cc() -> str:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or "cc"


@pytest.fixture(scope="module")
def asan_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the cosmoext package whose _runtime is the sanitized build."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed (CI installs it)")
    tmp = tmp_path_factory.mktemp("asan")
    build = tmp / "build"
    flags = ("-fsanitize=address,undefined -fno-omit-frame-pointer "
             "-fno-sanitize-recover=undefined -g")
    cfg = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Debug",
                          f"-DCMAKE_C_COMPILER={_cc()}", f"-DCMAKE_C_FLAGS={flags}",
                          f"-DCMAKE_SHARED_LINKER_FLAGS={flags}",
                          f"-DCMAKE_MODULE_LINKER_FLAGS={flags}",
                          f"-DPython_EXECUTABLE={sys.executable}"],
                         capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout[-3000:] + cfg.stderr[-3000:]
    b = subprocess.run(["cmake", "--build", str(build), "-j", "1"], capture_output=True, text=True)
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    built = build / f"_runtime{suffix}"
    assert built.exists(), sorted(p.name for p in build.iterdir())
    site = tmp / "site"
    pkg = site / "cosmoext"
    shutil.copytree(Path(cosmoext.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("_runtime*.so", "__pycache__"))
    shutil.copy(built, pkg / built.name)
    return site


def _asan_env(site: Path, logs: Path, pic_dir: Path) -> dict[str, str]:
    libasan = subprocess.run([_cc(), "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    assert os.path.isabs(libasan) and os.path.exists(libasan), libasan
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(HERE)]),
        CX_TEST_PIC_DIR=str(pic_dir),
        LD_PRELOAD=libasan,
        # CPython's own allocations live until exit: leaks are valgrind's job below
        ASAN_OPTIONS=f"detect_leaks=0:log_path={logs}/asan:abort_on_error=0",
        UBSAN_OPTIONS=f"halt_on_error=1:print_stacktrace=1:log_path={logs}/ubsan",
    )
    return env


def _assert_no_reports(stderr: str, logs: Path) -> None:
    found = {p.name: p.read_text(errors="replace")[-3000:] for p in logs.iterdir()}
    assert not found, found
    for marker in REPORT_MARKERS:
        assert marker not in stderr, stderr[-4000:]


def test_ext_suite_under_asan_and_ubsan(asan_site: Path, pic_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    env = _asan_env(asan_site, logs, pic_dir)
    which = subprocess.run([sys.executable, "-c",
                            "import cosmoext._runtime as r; print(r.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert which.returncode == 0, which.stderr[-3000:]
    assert which.stdout.strip().startswith(str(asan_site)), which.stdout
    # -s: sanitizer output must not be swallowed by pytest's capture
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-rs",
                           "-p", "no:cacheprovider", str(EXT_SUITE)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    _assert_no_reports(proc.stderr + proc.stdout, logs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout)


LOADS = textwrap.dedent("""
    import importlib.machinery as m, os, shutil, sys
    import cosmoext._runtime as rt
    src, work = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    ok = bad = 0

    def load(path, name="cx_state"):
        spec = m.ModuleSpec(name, None, origin=path)
        mod = rt.create_module(spec)
        if not isinstance(mod, type(sys)):
            rt.exec_module(mod)  # (cx_state is single-phase; kept for other seeds)
        return mod

    for i in range(200):  # distinct files: a file already loaded is not loaded again
        p = os.path.join(work, f"ok{i}.cosmoext")
        shutil.copyfile(src, p)
        assert load(p).__name__ == "cx_state"
        ok += 1
    corrupt = []
    for i in range(200):
        b = bytearray(data)
        kind = i % 5
        if kind == 0:
            b = b[: len(b) * (i + 1) // 201]          # truncated
        elif kind == 1:
            b[0] ^= 0xFF                              # bad magic
        elif kind == 2:
            b[(i * 7919) % len(b)] ^= 0x40            # a flipped byte: checksum
        elif kind == 3:
            b = b + b"\\0" * 4096                     # padded
        p = os.path.join(work, f"bad{i}.cosmoext")
        if kind != 4:
            open(p, "wb").write(b)
        else:
            p = os.path.join(work, "missing", f"x{i}.cosmoext")
        try:
            load(p, "cx_state" if i % 3 else "other_name")
        except ImportError:
            bad += 1
    c = rt.counters()
    print("loads", ok, "failed", bad, c)
    assert ok == 200 and bad == 200, (ok, bad)
""")


def test_valgrind_loads_and_failed_loads(pic_dir: Path, tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is needed (CI installs it)")
    image = pic_dir / "cx_state.cosmoext"
    assert image.exists(), image
    script = tmp_path / "loads.py"
    script.write_text(LOADS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONMALLOC"] = "malloc"  # pymalloc's arenas confuse memcheck
    cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
           "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
           f"--suppressions={SUPPRESSIONS}", "--num-callers=30",
           sys.executable, str(script), str(image), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "loads 200 failed 200" in proc.stdout, out[-3000:]
    assert "ERROR SUMMARY: 0 errors" in proc.stderr, proc.stderr[-6000:]
    assert "definitely lost: 0 bytes" in proc.stderr or "All heap blocks were freed" in \
        proc.stderr or "definitely lost" not in proc.stderr, proc.stderr[-6000:]
