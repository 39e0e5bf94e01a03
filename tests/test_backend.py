"""The PEP 517 backend (cosmoext.build) and `cosmoext wheel`: real builds with
pip, python -m build and PyPI sdists; no mocks."""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from cosmoext import format as fmt

ROOT = Path(__file__).parent.parent
DEMO = ROOT / "examples" / "setuptools_demo"
# This interpreter's wheel tags (what bdist_wheel writes for a host-target build).
PY_TAG = "cp{}{}".format(*sys.version_info[:2])
PLATFORM_TAG = sysconfig.get_platform().replace("-", "_").replace(".", "_")
HOST_TAG = f"{PY_TAG}-{PY_TAG}-{PLATFORM_TAG}"
COSMO_WHEEL = f"cxdemo-1.0.0+cosmo-{PY_TAG}-none-any.whl"


def _pip_wheel(src: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                           "--no-deps", "-w", str(out), *extra, str(src)],
                          capture_output=True, text=True, timeout=600)


def _check_record(whl: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(whl) as z:
        files = {n: z.read(n) for n in z.namelist()}
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    rows = [r.split(",") for r in files[record].decode().splitlines() if r]
    assert {r[0] for r in rows} == set(files)
    for name, digest, size in rows:
        if name == record:
            continue
        d = base64.urlsafe_b64encode(hashlib.sha256(files[name]).digest()).rstrip(b"=")
        assert digest == f"sha256={d.decode()}" and int(size) == len(files[name]), name
    return files


def _install(whl: Path, target: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(whl)], check=True, capture_output=True)


def _py(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(path))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd="/")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    dst = tmp_path / "demo"
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return dst


def test_pip_wheel_host_target(demo: Path, tmp_path: Path) -> None:
    proc = _pip_wheel(demo, tmp_path / "w")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = (tmp_path / "w").glob("*.whl")
    assert whl.name == f"cxdemo-1.0.0-{HOST_TAG}.whl"
    files = _check_record(whl)
    assert not [n for n in files if n.endswith((".so", ".pyd"))]
    cx = sorted(n for n in files if n.endswith(".cosmoext"))
    assert cx == ["cxdemo/_sorted.cosmoext", "cxdemo/_speedups.cosmoext"]
    for n in cx:
        (img,) = fmt.parse(files[n])
        assert img.target == "linux-gnu" and img.arch_name == platform.machine()
    wheel_txt = files["cxdemo-1.0.0.dist-info/WHEEL"].decode()
    assert f"Tag: {HOST_TAG}" in wheel_txt
    assert "Cosmoext-Target: linux-gnu" in wheel_txt
    assert "Requires-Dist: cosmoext" in files["cxdemo-1.0.0.dist-info/METADATA"].decode()
    _install(whl, tmp_path / "site")
    proc = _py("import cxdemo; print(cxdemo.scale([1, 2]), cxdemo.unique_sorted(['b', 'a', 'b']),"
               " cxdemo._sorted.__file__.endswith('.cosmoext'))", tmp_path / "site")
    assert proc.stdout.strip() == "[3, 6] ['a', 'b'] True", proc.stderr


def test_cosmo_target_wheel_is_tagged_and_refused_here(demo: Path, tmp_path: Path) -> None:
    proc = _pip_wheel(demo, tmp_path / "w", "-C", "target=cosmo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = (tmp_path / "w").glob("*.whl")
    assert whl.name == COSMO_WHEEL
    files = _check_record(whl)
    meta = files["cxdemo-1.0.0+cosmo.dist-info/METADATA"].decode()
    assert "Version: 1.0.0+cosmo" in meta and "Requires-Dist: cosmoext" not in meta
    assert "Cosmoext-Target: cosmo" in files["cxdemo-1.0.0+cosmo.dist-info/WHEEL"].decode()
    _install(whl, tmp_path / "site")
    proc = _py("import cxdemo", tmp_path / "site")
    assert "built for target 'cosmo', this interpreter is 'linux-gnu'" in proc.stderr


def test_python_m_build_with_list_setting(demo: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                           "-C", "arch=x86_64", "-C", "pic=false", "-o", str(tmp_path / "w"),
                           str(demo)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = (tmp_path / "w").glob("*.whl")
    with zipfile.ZipFile(whl) as z:
        (img,) = fmt.parse(z.read("cxdemo/_speedups.cosmoext"))
    assert not img.flags & fmt.F_PIC  # pic=false reached the compiler


def test_pyproject_settings_table(demo: Path, tmp_path: Path) -> None:
    text = (demo / "pyproject.toml").read_text()
    (demo / "pyproject.toml").write_text(text.replace("[tool.cosmoext]",
                                                      '[tool.cosmoext]\narch = ["x86_64"]\n'
                                                      'target = "cosmo"'))
    proc = _pip_wheel(demo, tmp_path / "w")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [w.name for w in (tmp_path / "w").glob("*.whl")] == [COSMO_WHEEL]


@pytest.mark.parametrize(("setting", "message"), [
    ("archh=x86_64", "config setting (-C): unknown setting 'archh' (did you mean 'arch'?)"),
    ("arch=mips", "setting 'arch': unsupported architecture mips (choose from x86_64, aarch64)"),
    ("toolchain=cosmocc cosmocc=/nonexistent",
     f"toolchain 'cosmocc' ({platform.machine()}): cosmocc not found at /nonexistent "
     "(from setting 'cosmocc'): expected /nonexistent/bin/cosmocc"),
    ("toolchain=cosmocc pic=true", "setting 'pic': cosmocc cannot make position-independent"),
    ("pic=maybe", "setting 'pic': expected true or false, got 'maybe'"),
])
def test_bad_settings(demo: Path, tmp_path: Path, setting: str, message: str) -> None:
    proc = _pip_wheel(demo, tmp_path / "w", *(a for kv in setting.split() for a in ("-C", kv)))
    assert proc.returncode != 0
    errors = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines()
              if ln.strip().startswith("cosmoext: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stdout + proc.stderr
    assert not list((tmp_path / "w").glob("*.whl"))


def test_editable_install(demo: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)],
                   check=True)
    py = str(env_dir / "bin" / "python")
    proc = subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                           "-e", str(demo)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = demo / "src" / "cxdemo" / "_speedups.cosmoext"
    assert built.exists()
    proc = subprocess.run([py, "-c", "import cxdemo; print(cxdemo._speedups.__file__,"
                           " cxdemo.scale([2]))"], capture_output=True, text=True, cwd="/")
    assert proc.stdout.strip() == f"{built} [6]", proc.stderr


@pytest.mark.network
@pytest.mark.slow
def test_cosmoext_wheel_ujson_from_pypi(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "wheel", "ujson==6.1.0", "-w",
                           str(tmp_path / "w")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (whl,) = (tmp_path / "w").glob("*.whl")
    files = _check_record(whl)
    assert "ujson.cosmoext" in files and not [n for n in files if n.endswith(".so")]
    _install(whl, tmp_path / "site")
    code = ("import ujson, json; doc = {'a': [1, 2.5, None, True, 'é'], 'b': {'c': 10**18}};"
            "s = ujson.dumps(doc); assert ujson.loads(s) == doc == json.loads(s), s;"
            "print(ujson.__file__)")
    proc = _py(code, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("site/ujson.cosmoext")


@pytest.mark.network
def test_cosmoext_wheel_cython_project(tmp_path: Path) -> None:
    src = tmp_path / "cyx"
    (src / "cyx").mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61", "wheel", "Cython>=3"]\n'
        'build-backend = "setuptools.build_meta"\n[project]\nname = "cyx"\nversion = "0.1"\n')
    (src / "setup.py").write_text(
        "from Cython.Build import cythonize\nfrom setuptools import setup\n"
        "setup(packages=['cyx'], ext_modules=cythonize(['cyx/fib.pyx'], language_level=3))\n")
    (src / "cyx" / "__init__.py").write_text("")
    (src / "cyx" / "fib.pyx").write_text(
        "def fib(int n):\n    cdef long a = 0, b = 1\n    for _ in range(n):\n"
        "        a, b = b, a + b\n    return a\n")
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "wheel", str(src), "-w",
                           str(tmp_path / "w")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (whl,) = (tmp_path / "w").glob("*.whl")
    _install(whl, tmp_path / "site")
    proc = _py("from cyx import fib; print(fib.fib(50), fib.__file__.endswith('.cosmoext'))",
               tmp_path / "site")
    assert proc.stdout.strip() == "12586269025 True", proc.stderr


def test_cosmoext_itself_installs_editable(tmp_path: Path) -> None:
    """`pip install -e .` of cosmoext gives a working command, -m entry and loader."""
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)],
                   check=True)
    py, exe = str(env_dir / "bin" / "python"), str(env_dir / "bin" / "cosmoext")
    proc = subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                           "-e", str(ROOT)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip() \
        == f"cosmoext {version}"
    out = subprocess.run(
        [py, "-c", "import cosmoext, cosmoext._runtime as r, sys;"
         "print(cosmoext.__file__); print(r.info()['mode'])"],
        capture_output=True, text=True, cwd="/").stdout.split()
    assert out == [str(ROOT / "cosmoext" / "__init__.py"), "extension"]
