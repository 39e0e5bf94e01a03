"""Real ports: ujson 6.1.0 and greenlet 3.5.6, built from their PyPI sdists with
``cosmoext wheel``, pass their own upstream test suites in both interpreters:

* the ordinary CPython through the host finder, with PIC images;
* the static no-dlopen interpreter from ``cosmoext embed``, with non-PIC
  images (the shape cosmocc emits).

The work is done by ``tests/support/ports.py`` (the same code the README's
manual commands run); ``tests/support/cxguard.py`` proves inside each run that the
modules are the ``.cosmoext`` images and that no native build exists on
``sys.path`` or was ever mapped.  Expected counts and the reason for every
test that does not pass live in ``examples/<port>/port.toml``.  greenlet's
suite takes 1-2 minutes per interpreter; the builds (six wheels) about 3.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from support import cosmo, ports

from cosmoext import format as fmt

# Builds from PyPI sdists, and takes minutes.
pytestmark = [pytest.mark.network, pytest.mark.slow]

RUNS = [("ujson", "host"), ("ujson", "embed"), ("greenlet", "host"), ("greenlet", "embed"),
        ("ujson", "host-shared-cxx"), ("greenlet", "host-shared-cxx")]
# The real APE python.com with cosmocc images: x86_64 natively, aarch64 under qemu.
COSMO_RUNS = [("ujson", "cosmo"), ("greenlet", "cosmo"), ("ujson", "cosmo-aarch64"),
              ("greenlet", "cosmo-aarch64")]
_results: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> ports.Work:
    return ports.Work(tmp_path_factory.mktemp("ports"))


def _result(work: ports.Work, name: str, interp: str) -> dict[str, Any]:
    if (name, interp) not in _results:
        _results[name, interp] = ports.run_port(work, ports.load_port(name), interp)
    return _results[name, interp]


def _params() -> list[Any]:
    out: list[Any] = [pytest.param(n, i, id=f"{n}-{i}") for n, i in RUNS]
    for n, i in COSMO_RUNS:
        marks = [pytest.mark.cosmo] + ([pytest.mark.qemu] if i.endswith("aarch64") else [])
        out.append(pytest.param(n, i, id=f"{n}-{i}", marks=marks))
    return out


@pytest.mark.parametrize(("name", "interp"), _params())
def test_upstream_suite(work: ports.Work, name: str, interp: str) -> None:
    if interp in ports.COSMO:
        cosmo.toolchain_root()  # skip for a user without cosmocc; fail where it is provided
        os.environ.setdefault("COSMO_PYTHON", str(cosmo.python_build()))
    r = _result(work, name, interp)
    assert r["ok"], ports.render([r])
    port = ports.load_port(name)
    assert r["counts"] == r["expected"] and r["counts"]["passed"] > 0
    assert r["counts"]["failed"] == r["counts"]["error"] == 0
    # Every test that did not pass is one port.toml explains, with the same outcome.
    assert {n["test"]: n["outcome"] for n in r["not_passed"]} == \
        {t: e["outcome"] for t, e in port.not_passed_in(interp).items()}
    # The guard saw every extension module as a .cosmoext image of the right kind.
    modules = port.modules + [m for tp in port.test_ports for m in tp["modules"]
                              if not (interp in ports.COSMO
                                      and tp["requirement"] in port.cosmo_standins)]
    seen = {g["module"]: g for g in r["guard"]}
    assert set(modules) <= set(seen)
    for g in seen.values():
        assert g["file"].endswith(".cosmoext") and g["pic"] == interp.startswith("host"), g
    if interp == "embed":
        assert r["runtime"] == {"mode": "embedded", "extension_suffixes": []}
        assert [g["module"] for g in r["guard"] if g["stdlib"]] == port.embed_stdlib
    elif interp in ports.COSMO:
        assert r["runtime"] == {"mode": "embedded", "extension_suffixes": []}
        assert r["python"][-1].endswith("python.com")
    else:
        assert r["runtime"]["mode"] == "extension"
        # The C++ modules' images carry libstdc++ (static) or import it (shared).
        cxx = {"ujson": "ujson", "greenlet": "greenlet._greenlet"}[name]
        (img,) = fmt.parse(Path(seen[cxx]["file"]).read_bytes())
        imported = any(i.name == "__gxx_personality_v0" for i in img.imports)
        assert imported == (interp == "host-shared-cxx"), [i.name for i in img.imports]


def test_guard_refuses_a_native_build_on_sys_path(work: ports.Work, tmp_path: Path) -> None:
    """The proof is not vacuous: a native ujson.so anywhere on sys.path stops the run."""
    r = _result(work, "ujson", "host")
    fake = tmp_path / "native"
    fake.mkdir()
    so = fake / ("ujson" + sysconfig.get_config_var("EXT_SUFFIX"))
    so.write_bytes(b"")
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=r["pythonpath"] + os.pathsep + str(fake), CXGUARD_MODULES="ujson")
    cmd = [*r["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "support.cxguard",
           str(tmp_path / "test_x.py")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert f"cxguard: a native build of ujson is on sys.path: {so}" in proc.stderr
    # ...and the same run without it passes, reporting where ujson came from.
    env["PYTHONPATH"] = r["pythonpath"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cxguard: ujson from " in proc.stdout and "ujson.cosmoext (PIC" in proc.stdout


@pytest.mark.parametrize("interp", ["host", "embed"])
def test_ported_psutil_works(work: ports.Work, interp: str) -> None:
    """psutil as ported for greenlet's tests: the libc names it imports and the
    runtime's dlopen/dlsym answers (heap_info probes dlopen("libc.so.6") +
    dlsym("mallinfo2") and falls back to mallinfo() when dlopen fails)."""
    r = _result(work, "greenlet", interp)
    code = ("import psutil, resource\n"
            "print(psutil._psplatform.cext.__file__)\n"
            "h = psutil.heap_info(); assert h.heap_used > 0, h\n"
            "assert 'lo' in psutil.net_if_addrs()\n"
            "assert psutil.disk_partitions(all=True)\n"
            "assert isinstance(psutil.users(), list)\n"
            "assert psutil.Process().memory_full_info().uss > 0\n"
            "assert psutil.Process().rlimit(psutil.RLIMIT_NOFILE)[0] > 0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = r["pythonpath"]
    proc = subprocess.run([*r["python"], "-c", code], env=env, capture_output=True, text=True,
                          cwd=r["cwd"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("psutil/_psutil_linux.cosmoext")


@pytest.mark.cosmo
def test_cosmo_wheel_installs_with_the_apes_own_pip(work: ports.Work, tmp_path: Path) -> None:
    """A Cosmopolitan Python user's install: ``python.com -m pip install --user`` of the
    fat +cosmo wheel, then ``import ujson`` from the APE's user site-packages with no
    PYTHONPATH."""
    cosmo.toolchain_root()
    os.environ.setdefault("COSMO_PYTHON", str(cosmo.python_build()))
    whl = work.wheel("ujson==6.1.0", "cosmo")
    env = dict(work.pip_env(), HOME=str(tmp_path))
    python = work.python_cmd("cosmo")
    proc = subprocess.run([*python, "-m", "pip", "install", "--user", "--no-deps", "--no-index",
                           "--root-user-action=ignore", str(whl)], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    del env["PYTHONPATH"]
    code = "import site, ujson; print(site.getusersitepackages()); print(ujson.__file__)"
    proc = subprocess.run([*python, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    user_site, where = proc.stdout.split()
    assert user_site.startswith(str(tmp_path)) and where == f"{user_site}/ujson.cosmoext"
