"""The two claims behind "a substitute for dlopen, under strict W^X", proven
by re-running the whole test-extension suite in guarded child processes:

(a) no .cosmoext is ever handed to the dynamic linker: an LD_AUDIT library
    kills the child (exit 97) if the dynamic linker is asked for one;
(b) W^X: under a seccomp filter that kills the process on any
    mmap/mprotect/pkey_mprotect asking for PROT_WRITE|PROT_EXEC, every test
    extension loads and runs; and in this process no mapping in
    /proc/self/maps is writable and executable after loading them.

The harness self-tests (tests/test_harness.py) show both guards do fire.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from harness.audit import build_audit_lib, read_audit_log, run_with_audit
from harness.wx_guard import maps_wx_violations, run_under_wx_filter
from support.extensions import EXTENSIONS, image_file_names, image_path
from support.runs import EXT_SUITE, assert_all_passed

from cosmoext import format as fmt

HERE = Path(__file__).parent
SUITE = str(EXT_SUITE)
CHILD = (
    "import sys, pytest\n"
    f"sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', {SUITE!r}]))\n"
)


def _env(pic_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CX_TEST_PIC_DIR"] = str(pic_dir)
    env["PYTHONPATH"] = str(HERE)
    return env


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_suite_under_wx_seccomp(pic_dir: Path) -> None:
    proc = run_under_wx_filter(CHILD, env=_env(pic_dir), timeout=600)
    assert proc.returncode == 0, _explain(proc)
    assert_all_passed(proc.stdout)


def test_suite_under_ld_audit(pic_dir: Path, tmp_path: Path) -> None:
    lib = build_audit_lib(tmp_path)
    log = tmp_path / "audit.log"
    proc = run_with_audit(CHILD, lib, log, env=_env(pic_dir), timeout=600)
    assert proc.returncode == 0, _explain(proc)
    assert_all_passed(proc.stdout)
    opened = [name for kind, name in read_audit_log(log) if kind == "open"]
    # The audit hook saw the dynamic linker at work (the runtime itself is a .so) ...
    assert any("_runtime" in n for n in opened), opened[-20:]
    # ... and it never saw a .cosmoext.
    assert not [n for _, n in read_audit_log(log) if ".cosmoext" in n]


def test_no_wx_mapping_after_loads(ext) -> None:
    import cosmoext._runtime as rt

    for name in EXTENSIONS:
        ext(name)
        assert maps_wx_violations() == [], name
    machine = rt.info()["machine"]
    for i in rt.images():  # placed at the alignment its image header asks for
        img = next(m for m in fmt.parse(Path(i["path"]).read_bytes()) if m.arch_name == machine)
        assert i["base"] % img.align == 0 and img.align >= 0x1000, (i, img.align)
    loaded = {Path(i["path"]).name for i in rt.images()}
    assert image_file_names() <= loaded


def test_cosmoext_wins_over_a_native_build_beside_it(pic_dir: Path, tmp_path: Path) -> None:
    """The suite above imported .cosmoext files, not look-alike shared objects: with a
    native build of the same module in the same directory (a file that dlopen would
    refuse, so taking it fails the import), the path hook still picks the .cosmoext."""
    assert not list(pic_dir.rglob("*.so"))  # the build made images only
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    names = ["cx_tables", "cx_pkg.sub"]
    for name in names:
        img = image_path(tmp_path, name)
        img.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image_path(pic_dir, name), img)
        image_path(tmp_path, name, suffix).write_bytes(b"not an ELF file\n")
    (tmp_path / "cx_pkg" / "__init__.py").touch()
    code = ("import importlib, sys; sys.path.insert(0, sys.argv[1])\n"
            "for n in sys.argv[2:]: print(importlib.import_module(n).__file__)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), *names],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(image_path(tmp_path, n)) for n in names]
    # ... and the decoys are real competitors: without the images, they are what is taken.
    for name in names:
        image_path(tmp_path, name).unlink()
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path), names[0]],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert str(image_path(tmp_path, names[0], suffix)) in proc.stderr, proc.stderr
