"""``cosmoext doctor``: verdict first, then details; --json twin; install hints for what is missing.

A missing tool is simulated by running doctor with a PATH that holds only
gcc and ld (no g++, no clang, no cross compilers, no qemu, no cmake).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def doctor(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "cosmoext", "doctor", *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def full() -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    return doctor(), doctor("--json")


@pytest.fixture(scope="module")
def only_gcc(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with gcc and ld and nothing else."""
    d = tmp_path_factory.mktemp("bin-gcc-only")
    for tool in ("gcc", "ld"):
        real = shutil.which(tool)
        assert real, f"{tool} is needed for this test"
        os.symlink(real, d / tool)
    return str(d)


def checks_found(rep: dict, cid: str) -> bool:
    return next(c for c in rep["checks"] if c["id"] == cid)["found"]


def host() -> str:
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(os.uname().machine, os.uname().machine)


def test_text_verdict_first_then_details(full) -> None:
    text, _ = full
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == (f"cosmoext doctor: OK: the default route (gnu-{host()}) can build C "
                        "and C++ extensions and load them in this Python")
    assert lines.index("routes:") < lines.index("found:")
    route = next(ln for ln in lines if f" gnu-{host()} " in ln)
    assert route.split()[0] == "ok" and route.endswith("(default)"), route
    gcc = next(ln.split() for ln in lines if ln.split()[:2] == ["compiler", "gcc"])
    want = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    assert gcc[2] == want.strip() and gcc[3] == shutil.which("gcc"), gcc
    # The static C++ runtime is located through g++, as build-ext does.
    lib = next(ln.split() for ln in lines if ln.split()[:3] == ["static", "library", "libstdc++.a"])
    assert os.path.isfile(lib[-1]) and lib[-1].endswith("libstdc++.a"), lib
    py = next(ln.split() for ln in lines if ln.split()[:2] == ["headers", "Python.h"])
    assert Path(py[-1], "Python.h").is_file()
    assert py[2] == ".".join(map(str, sys.version_info[:3])), py


def test_json_twin(full) -> None:
    text, js = full
    assert js.returncode == 0, js.stderr
    rep = json.loads(js.stdout)
    assert rep["schema"] == "cosmoext.doctor/1"
    assert rep["ok"] is True and rep["default_route"] == f"gnu-{host()}"
    assert text.stdout.splitlines()[0] == f"cosmoext doctor: {rep['verdict']}"
    assert rep["host"]["arch"] == host() and rep["host"]["executable"] == sys.executable
    routes = {r["id"]: r for r in rep["routes"]}
    assert set(routes) >= {f"gnu-{host()}", f"clang-{host()}", "cosmocc", "embed", "cmake"}
    default = routes[f"gnu-{host()}"]
    assert default["default"] and default["ok"] and default["missing"] == []
    assert {"gcc", "g++", "ld", "libstdc++.a", "libgcc.a", "Python.h",
            "cosmoext._runtime"} <= set(default["needs"])
    assert checks_found(rep, "libgcc_eh.a")  # reported (recommended) as well
    checks = {c["id"]: c for c in rep["checks"]}
    for cid in default["needs"]:
        c = checks[cid]
        assert c["found"] and c["install"] is None, c
    assert checks["gcc"]["path"] == shutil.which("gcc")
    assert checks["ld"]["version"] and checks["ld"]["version"][0].isdigit(), checks["ld"]
    assert checks["cosmoext._runtime"]["version"].startswith(f"{host()} linux-gnu cp3")
    # Every route's verdict follows from its checks.
    for r in rep["routes"]:
        assert r["ok"] == all(checks[n]["found"] for n in r["needs"]), r
        assert r["missing"] == [n for n in r["needs"] if not checks[n]["found"]], r
    # Every missing check names how to get it, and the summary carries it.
    for c in rep["checks"]:
        assert c["found"] or c["install"], c


def test_missing_tools_are_reported_with_install_commands(only_gcc: str) -> None:
    js = doctor("--json", path=only_gcc)
    assert js.returncode == 1, js.stdout + js.stderr
    rep = json.loads(js.stdout)
    assert rep["ok"] is False
    checks = {c["id"]: c for c in rep["checks"]}
    assert checks["gcc"]["found"] and checks["ld"]["found"]
    assert checks["g++"] == {"id": "g++", "kind": "compiler", "found": False, "path": None,
                             "version": None, "install": "apt-get install g++", "note": ""}
    assert checks["clang"]["install"] == "apt-get install clang"
    # The C++ runtime cannot be located without g++: the hint is g++'s.
    assert not checks["libstdc++.a"]["found"]
    assert checks["libstdc++.a"]["install"] == "apt-get install g++"
    cross = "aarch64" if host() == "x86_64" else "x86_64"
    triplet = f"{cross}-linux-gnu"
    assert checks[f"{triplet}-gcc"]["install"] == \
        f"apt-get install gcc-{triplet.replace('_', '-')}"
    assert checks[f"{triplet}-g++"]["install"] == \
        f"apt-get install g++-{triplet.replace('_', '-')}"
    assert checks[f"qemu-{cross}"]["install"] == "apt-get install qemu-user"
    assert checks["cmake"]["install"] == "apt-get install cmake"
    default = next(r for r in rep["routes"] if r["default"])
    assert not default["ok"]
    assert "g++" in default["missing"] and "gcc" not in default["missing"]
    assert rep["verdict"] == (f"NOT READY: the default route (gnu-{host()}) is missing "
                              + ", ".join(default["missing"]))
    # One apt-get line with every package, without repeats.
    apt = [c for c in rep["install"] if c.startswith("apt-get install ")]
    assert len(apt) == 1
    pkgs = apt[0].split()[2:]
    assert len(pkgs) == len(set(pkgs))
    assert {"g++", "clang", "cmake", "qemu-user"} <= set(pkgs), pkgs

    text = doctor(path=only_gcc)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert lines[0] == f"cosmoext doctor: {rep['verdict']}"
    gxx = next(ln for ln in lines if ln.split()[:2] == ["compiler", "g++"])
    assert gxx.rstrip().endswith("apt-get install g++"), gxx
    assert lines.index("missing (and how to install):") > lines.index("found:")
    assert f"  {apt[0]}" in lines
