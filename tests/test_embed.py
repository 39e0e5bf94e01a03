"""`cosmoext embed`: a static, non-PIE interpreter with no dynamic loading,
linked from Debian's libpython3.11.a and glibc's libc.a, in which the
test-extension suite runs from both non-PIC (cosmocc-shaped) and PIC images."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from harness.wx_guard import run_under_wx_filter
from support import runs
from support.build import build_ext
from support.extensions import cflags, sources
from support.runs import EXT_SUITE, assert_all_passed

HERE = Path(__file__).parent
SUITE = str(EXT_SUITE)


@pytest.fixture(scope="session")
def embed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "python-cx"
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "embed", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def pure_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest and its pure-Python dependencies, for the embedded interpreter."""
    return runs.pure_site(tmp_path_factory.mktemp("embed-site"))


def _env(site: Path, images: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(HERE)])
    env["CX_TEST_PIC_DIR"] = str(images)
    return env


def _suite(python: Path) -> list[str]:
    return [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", SUITE]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_embedded_interpreter_has_no_dynamic_loading(embed_python: Path) -> None:
    code = (
        "import importlib.machinery as m, sys, cosmoext._runtime as r\n"
        "i = r.info(); print(i['mode'], i['static_tls_reserve'], m.EXTENSION_SUFFIXES)\n"
        "try:\n    import _ctypes\nexcept ImportError as e:\n    print(type(e).__name__)\n"
        "spec = m.ModuleSpec('x', m.ExtensionFileLoader('x', '/nonexistent/x.so'),"
        " origin='/nonexistent/x.so')\n"
        "try:\n    spec.loader.create_module(spec)\nexcept ImportError as e:\n    print(e)\n"
    )
    proc = _run([str(embed_python), "-c", code])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "embedded 65536 []"
    assert lines[1] == "ModuleNotFoundError"  # lib-dynload's _ctypes .so is not even considered
    assert "this interpreter has no dynamic loading" in lines[2]
    assert "refused dlopen" not in proc.stderr


@pytest.mark.parametrize("variant", ["nopic", "pic"])
def test_suite_in_embedded_interpreter(embed_python: Path, pure_site: Path, variant: str,
                                       request: pytest.FixtureRequest) -> None:
    images = request.getfixturevalue(f"{variant}_dir")
    proc = _run(_suite(embed_python), _env(pure_site, images))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout)


def test_nonpic_images_are_placed_near_the_host(embed_python: Path, nopic_dir: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import cx_tables, cx_cpp, cosmoext._runtime as r\n"
            "print(max(i['base'] + i['vsize'] for i in r.images()))\n")
    proc = _run([str(embed_python), "-c", code, str(nopic_dir)])
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) <= 1 << 31  # the host image is at 0x400000: within +-2 GiB


def test_shared_cxx_runtime_image_is_refused(embed_python: Path, tmp_path: Path) -> None:
    """An image built with cxx-runtime = shared imports libstdc++'s names, which
    this interpreter does not have: one ImportError naming them and the
    setting, and nothing left behind."""
    build_ext(name="cx_throw", sources=sources("cx_throw"), cflags=cflags("cx_throw"),
              output=str(tmp_path / "cx_throw.cosmoext"), pic=False, cxx_runtime="shared")
    code = ("import sys, cosmoext._runtime as r; sys.path.insert(0, sys.argv[1])\n"
            "try:\n    import cx_throw\nexcept ImportError as e:\n    print(e)\n"
            "print('cx_throw' in sys.modules, len(r.images()))\n")
    proc = _run([str(embed_python), "-c", code, str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    err, left = proc.stdout.strip().splitlines()
    assert "cx_throw.cosmoext" in err and "__gxx_personality_v0" in err, err
    assert "cxx-runtime = shared" in err, err
    assert left == "False 0"


def test_suite_in_embedded_interpreter_under_wx_seccomp(
        embed_python: Path, pure_site: Path, nopic_dir: Path) -> None:
    code = f"import os; os.execv({str(embed_python)!r}, {_suite(embed_python)!r})"
    proc = run_under_wx_filter(code, env=_env(pure_site, nopic_dir), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout)


def test_no_shared_object_is_ever_opened(embed_python: Path, pure_site: Path,
                                         nopic_dir: Path, tmp_path: Path) -> None:
    strace = shutil.which("strace")
    assert strace, "strace is installed by .ci/setup.sh"
    log = tmp_path / "trace"
    proc = _run([strace, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log),
                 *_suite(embed_python)], _env(pure_site, nopic_dir))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_all_passed(proc.stdout)
    opened = log.read_text().splitlines()
    assert any(".cosmoext" in line for line in opened)  # the trace sees our own open()s
    so = [line for line in opened if re.search(r'\.so(\.[0-9]+)*"', line)]
    assert so == [], so[:5]


def test_initialised_static_tls_needs_a_single_thread(embed_python: Path,
                                                       nopic_dir: Path) -> None:
    code = ("import sys, threading, time; sys.path.insert(0, sys.argv[1])\n"
            "ev = threading.Event(); t = threading.Thread(target=ev.wait); t.start()\n"
            "try:\n    import cx_tls\nexcept ImportError as e:\n    print(e)\n"
            "ev.set(); t.join(); print('cx_tls' in sys.modules)\n")
    proc = _run([str(embed_python), "-c", code, str(nopic_dir)])
    assert proc.returncode == 0, proc.stderr
    assert "only be set up while the interpreter runs one thread (1 others)" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize(("args", "expect"), [
    (["--libpython", "/nonexistent/libpython3.11.a"],
     "--libpython /nonexistent/libpython3.11.a: no such file; on Debian install it with: "
     "apt-get install libpython3.11-dev"),
    (["--libpython", "/etc/hostname"], "--libpython /etc/hostname: not a libpythonX.Y.a archive"),
    (["--python-include", "/nonexistent"], "--python-include /nonexistent: no Python.h there"),
    (["--cc", "no-such-cc"], "C compiler no-such-cc not found"),
])
def test_embed_bad_input(tmp_path: Path, args: list[str], expect: str) -> None:
    proc = _run([sys.executable, "-m", "cosmoext", "embed", "-o", str(tmp_path / "py"), *args])
    assert proc.returncode == 1
    assert proc.stderr.startswith("cosmoext: error: ")
    assert expect in proc.stderr.splitlines()[0], proc.stderr
    assert not (tmp_path / "py").exists()


def test_embed_rejects_headers_of_another_build(tmp_path: Path) -> None:
    # This interpreter's headers, claiming a patch release no libpython has.
    include = tmp_path / "include"
    shutil.copytree(sysconfig.get_paths()["include"], include)
    other = "{}.{}.99".format(*sys.version_info[:2])
    patch = include / "patchlevel.h"
    patch.write_text(re.sub(r'PY_VERSION\s+"[^"]+"', f'PY_VERSION "{other}"',
                            patch.read_text()))
    proc = _run([sys.executable, "-m", "cosmoext", "embed", "-o", str(tmp_path / "py"),
                 "--python-include", str(include)])
    assert proc.returncode == 1
    line = proc.stderr.splitlines()[0]
    assert "does not match the headers" in line and other in line, proc.stderr
