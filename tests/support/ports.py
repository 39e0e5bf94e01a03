#!/usr/bin/env python3
"""Real ports: run a PyPI project's own test suite against its ``.cosmoext`` build.

usage: python3 tests/support/ports.py [PORT ...] [--interp INTERP|both|all] [--work DIR]
                                      [--keep] [--json] [-v]

PORT is a directory of ``examples/`` holding a ``port.toml`` (``ujson``,
``greenlet``; default: all of them).  For each port and interpreter:

1. **Build.**  ``cosmoext wheel REQUIREMENT`` ports the pinned, unmodified
   sdist from PyPI into a wheel whose extension modules are ``.cosmoext``
   files: PIC images for the host interpreter, ``-C pic=false`` (the shape
   cosmocc emits) for the embedded one.  C extensions the test suite needs
   (``test_ports``, e.g. psutil for greenlet) are ported the same way.
2. **Install.**  ``pip install --no-deps --target`` (for python.com, its own
   pip: ``python.com -m pip``) puts the wheels into a
   directory inside the unpacked sdist (``cx-host`` / ``cx-embed``).  Pinned
   pure-Python test dependencies (pytest and the port's ``test_deps``) go to
   a separate site directory.
3. **Interpreters.**  *host*: this CPython, isolated in a venv without
   site-packages that holds only the installed cosmoext package and its
   ``cosmoext.pth`` (the ordinary host finder), so nothing else installed here
   can stand in.  *cosmo* / *cosmo-aarch64*: the fat APE ``python.com`` from
   ``cosmoext embed --toolchain cosmocc`` with fat cosmocc wheels, run
   natively and under qemu-aarch64 (test dependencies that cannot be built
   for Cosmopolitan get the stand-ins port.toml's ``[cosmo]`` names).
   *embed*: the static, no-dlopen interpreter ``cosmoext embed``
   makes; stdlib C modules it lacks that a port needs (``embed_stdlib``:
   ``resource`` for psutil) are built from CPython's own sources (Debian's
   ``python3.X`` source package, fetched with ``apt-get source`` into a private
   apt state directory) as non-PIC ``.cosmoext`` files.
4. **Run.**  pytest with ``-p support.cxguard`` in the unpacked sdist (started
   like ``python -m pytest``, by a one-line launcher that first installs
   cxguard's recorder of failed imports), where ``tests/support/cxguard.py``
   proves the modules are the ``.cosmoext`` images (``find_spec``, ``__file__``, no
   native ``.so`` anywhere on ``sys.path``, none mapped at the end, PIC or
   non-PIC as built) and records every test's outcome.
5. **Judge.**  The counts must equal the port's ``[expect]`` and every test
   that did not pass must be listed in its ``[[not_passed]]`` table with the
   same outcome and a reason; anything else fails the run.

``--work DIR`` keeps builds in DIR and reuses them while the installed
cosmoext is unchanged (a digest of its files is stamped on every build).
Exit status: 0 when every run is as expected.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"  # the ports: examples/<port>/port.toml
TESTS = REPO / "tests"  # on the runs' PYTHONPATH for the plugin support.cxguard
# host: this CPython (PIC images); embed: `cosmoext embed` (non-PIC); cosmo:
# the real fat APE python.com from `cosmoext embed --toolchain cosmocc`, with
# fat cosmocc images, run natively (x86_64) and under qemu (aarch64).
# host-shared-cxx: this CPython with images built -C cxx-runtime=shared (the
# C++ runtime imported from libstdc++.so.6); its expectations are host's.
INTERPS = ("host", "embed", "cosmo", "cosmo-aarch64", "host-shared-cxx")
SAME_AS = {"host-shared-cxx": "host"}
COSMO = ("cosmo", "cosmo-aarch64")
# Stand-ins for test dependencies that cannot be built for Cosmopolitan
# (tests/support/standins/<name>.py; port.toml's [cosmo] standins).
STANDINS = Path(__file__).resolve().parent / "standins"
# pytest and its dependencies, pinned (all pure Python).
PYTEST = ["pytest==9.0.3", "pluggy==1.6.0", "iniconfig==2.3.0", "packaging==26.2",
          "pygments==2.20.0"]
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


class PortError(Exception):
    """A step failed; the message says which and shows the tail of its output."""


@dataclass
class Port:
    name: str
    requirement: str
    modules: list[str]
    tests: list[str]
    test_deps: list[str] = field(default_factory=list)
    test_ports: list[dict[str, Any]] = field(default_factory=list)
    tests_in_sdist: str | None = None
    embed_stdlib: list[str] = field(default_factory=list)
    expect: dict[str, dict[str, int]] = field(default_factory=dict)
    not_passed: dict[str, dict[str, Any]] = field(default_factory=dict)
    cosmo_standins: dict[str, str] = field(default_factory=dict)  # requirement -> why
    # "module:Class.attr": factor, for interpreters run under qemu (see port.toml [emulated])
    emulated_scale: dict[str, float] = field(default_factory=dict)

    def not_passed_in(self, interp: str) -> dict[str, dict[str, Any]]:
        """The tests that do not pass in INTERP (entries may name their interpreters)."""
        interp = SAME_AS.get(interp, interp)
        return {t: e for t, e in self.not_passed.items()
                if not e["interps"] or interp in e["interps"]}

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]


def available_ports() -> list[str]:
    return sorted(p.parent.name for p in EXAMPLES.glob("*/port.toml"))


def load_port(name: str) -> Port:
    path = EXAMPLES / name / "port.toml"
    if not path.is_file():
        raise PortError(f"no port {name!r} (known: {', '.join(available_ports())})")
    d = tomllib.loads(path.read_text())
    expect = d.get("expect", {})
    per_interp = {i: {**{k: v for k, v in expect.items() if not isinstance(v, dict)},
                      **expect.get(SAME_AS.get(i, i), {})} for i in INTERPS}
    not_passed = {e["test"]: {"outcome": e["outcome"], "why": e["why"],
                              "interps": list(e.get("interps", []))}
                  for e in d.get("not_passed", [])}
    return Port(name=name, requirement=d["requirement"], modules=list(d["modules"]),
                tests=list(d["tests"]), test_deps=list(d.get("test_deps", [])),
                test_ports=list(d.get("test_ports", [])),
                tests_in_sdist=d.get("tests_in_sdist"),
                embed_stdlib=list(d.get("embed_stdlib", [])), expect=per_interp,
                not_passed=not_passed,
                cosmo_standins={e["requirement"]: e["why"]
                                for e in d.get("cosmo", {}).get("standins", [])},
                emulated_scale={e["attr"]: float(e["factor"])
                                for e in d.get("emulated", {}).get("scale", [])})


def cosmoext_digest() -> str:
    """Digest of the installed cosmoext package (sources, runtime, data)."""
    import cosmoext

    root = Path(cosmoext.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def _slug(requirement: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", requirement)


class Work:
    """A work directory: builds, sources, sites and interpreters, each made once."""

    def __init__(self, root: Path, verbose: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.verbose = verbose
        self.stamp = cosmoext_digest()
        self.builds: list[dict[str, Any]] = []  # wheel builds done by this object
        self._host: Path | None = None
        self._embed: Path | None = None
        self._cosmo: Path | None = None

    def log(self, line: str) -> None:
        print(f"ports: {line}", file=sys.stderr, flush=True)

    def run(self, cmd: list[str], what: str, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 1800,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.verbose:
            self.log("+ " + " ".join(map(str, cmd)))
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-4000:]
            raise PortError(f"{what} failed (exit {proc.returncode}): "
                            f"{' '.join(map(str, cmd))}\n{tail}")
        return proc

    # -- builds ---------------------------------------------------------------

    def wheel(self, requirement: str, kind: str) -> Path:
        """``cosmoext wheel REQUIREMENT`` for ``kind``: ``pic``, ``pic-shared-cxx``
        (``-C cxx-runtime=shared``), ``nopic`` (``-C pic=false``) or ``cosmo``
        (cosmocc, fat x86_64+aarch64); the wheel's path."""
        dest = self.root / "wheels" / f"{_slug(requirement)}-{kind}"
        stamp = dest / "cosmoext.stamp"
        found = sorted(dest.glob("*.whl"))
        if len(found) == 1 and stamp.exists() and stamp.read_text() == self.stamp:
            return found[0]
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        cmd = [sys.executable, "-m", "cosmoext", "wheel", requirement, "-w", str(dest),
               *{"pic": [], "pic-shared-cxx": ["-C", "cxx-runtime=shared"],
                 "nopic": ["-C", "pic=false"],
                 "cosmo": ["-C", "toolchain=cosmocc", "-C", "arch=x86_64,aarch64"]}[kind]]
        self.log(f"building {requirement} ({kind}) with cosmoext wheel")
        t0 = time.perf_counter()
        self.run(cmd, f"cosmoext wheel {requirement}", timeout=1800)
        seconds = time.perf_counter() - t0
        (whl,) = dest.glob("*.whl")
        stamp.write_text(self.stamp)
        self.builds.append({"requirement": requirement, "kind": kind, "seconds": seconds,
                            "wheel": str(whl)})
        return whl

    def sdist(self, requirement: str) -> Path:
        """The unpacked sdist of REQUIREMENT (fetched from PyPI by pinned version)."""
        dest = self.root / "src" / _slug(requirement)
        done = dest / ".unpacked"
        if done.exists():
            return Path(done.read_text())
        shutil.rmtree(dest, ignore_errors=True)
        (dest / "dl").mkdir(parents=True)
        self.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                  ":all:", "--disable-pip-version-check", "-d", str(dest / "dl"), requirement],
                 f"pip download {requirement}")
        (archive,) = (dest / "dl").iterdir()
        with tarfile.open(archive) as t:
            t.extractall(dest / "tree", filter="data")
        (top,) = (dest / "tree").iterdir()
        done.write_text(str(top))
        return top

    def site(self, pins: list[str]) -> Path:
        """A directory with the pinned pure-Python packages (no dependency resolution)."""
        key = hashlib.sha256("\n".join(sorted(pins)).encode()).hexdigest()[:12]
        dest = self.root / "site" / key
        if (dest / ".done").exists():
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        self.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                  "--disable-pip-version-check", "--root-user-action=ignore", "--target",
                  str(dest), *pins], "pip install --target (test dependencies)")
        (dest / ".done").write_text("\n".join(pins))
        return dest

    # -- interpreters ---------------------------------------------------------

    def host_python(self) -> Path:
        """This CPython in a venv whose only package is the installed cosmoext."""
        if self._host:
            return self._host
        import cosmoext

        pkg = Path(cosmoext.__file__).parent
        pth = pkg.parent / "cosmoext.pth"
        if not pth.exists():
            raise PortError(f"{pth}: missing; install cosmoext with pip so that its "
                            ".pth import hook is in place")
        venv = self.root / "host-venv"
        shutil.rmtree(venv, ignore_errors=True)
        self.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "python -m venv")
        py = venv / "bin" / "python"
        site = Path(self.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], "venv site").stdout.strip())
        (site / "cosmoext").symlink_to(pkg)
        shutil.copy(pth, site / "cosmoext.pth")
        self._host = py
        return py

    def embed_python(self) -> Path:
        """``cosmoext embed``: the static interpreter with the loader built in."""
        if self._embed:
            return self._embed
        out = self.root / "python-cx"
        stamp = self.root / "python-cx.stamp"
        if not (out.exists() and stamp.exists() and stamp.read_text() == self.stamp):
            self.log("linking the embedded interpreter (cosmoext embed)")
            self.run([sys.executable, "-m", "cosmoext", "embed", "-o", str(out)],
                     "cosmoext embed")
            stamp.write_text(self.stamp)
        self._embed = out
        return out

    def cosmo_python(self) -> Path:
        """``cosmoext embed --toolchain cosmocc``: the fat APE python.com (needs
        cosmocc, and COSMO_PYTHON naming a Cosmopolitan CPython build)."""
        if self._cosmo:
            return self._cosmo
        out = self.root / "python.com"
        stamp = self.root / "python.com.stamp"
        if not (out.exists() and stamp.exists() and stamp.read_text() == self.stamp):
            self.log("linking python.com (cosmoext embed --toolchain cosmocc)")
            self.run([sys.executable, "-m", "cosmoext", "embed", "--toolchain", "cosmocc",
                      "--arch", "x86_64,aarch64", "-o", str(out)],
                     "cosmoext embed --toolchain cosmocc")
            stamp.write_text(self.stamp)
        self._cosmo = out
        return out

    def pip_env(self) -> dict[str, str]:
        """An environment in which python.com can run pip: pip's own package
        (pure Python, from this interpreter's installation) and nothing else."""
        import pip

        site = self.root / "pip-only"
        if not (site / "pip").exists():
            site.mkdir(exist_ok=True)
            (site / "pip").symlink_to(Path(pip.__file__).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(site)
        return env

    def python_cmd(self, interp: str) -> list[str]:
        """How to start INTERP's python."""
        if interp in ("host", "host-shared-cxx"):
            return [str(self.host_python())]
        if interp == "embed":
            return [str(self.embed_python())]
        com = str(self.cosmo_python())
        if interp == "cosmo":
            return ["sh", com]  # an APE starts through the shell
        from cosmoext.toolchain import cosmocc_root

        return ["qemu-aarch64", str(Path(cosmocc_root()) / "bin" / "ape-aarch64.elf"), com]

    def cpython_sources(self, files: list[str]) -> Path:
        """Files of CPython's source tree, for the embedded interpreter's version.

        They come from Debian's source package of that Python (``apt-get
        source --download-only``, with a private apt state directory and
        ``deb-src`` twins of this machine's ``deb`` sources, so the system's
        apt configuration is left alone); only the upstream tarball is used."""
        py = self.embed_python()
        version = self.run([str(py), "-c", "import platform; print(platform.python_version())"],
                           "embedded interpreter version").stdout.strip()
        majmin = ".".join(version.split(".")[:2])
        dest = self.root / f"cpython-{version}"
        if all((dest / f).exists() for f in files):
            return dest
        apt = self.root / "apt"
        (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (apt / "dl").mkdir(exist_ok=True)
        (apt / "sources.list").write_text(_deb_src_lines())
        opts = [f"-oDir::Etc::SourceList={apt / 'sources.list'}",
                "-oDir::Etc::SourceParts=/nonexistent", f"-oDir::State::Lists={apt / 'lists'}",
                f"-oDir::Cache={apt / 'cache'}", "-oAPT::Sandbox::User=root"]
        self.log(f"fetching CPython {version} sources (Debian source package python{majmin})")
        self.run(["apt-get", *opts, "-qq", "update"], "apt-get update (deb-src, private state)",
                 timeout=600)
        proc = self.run(["apt-get", *opts, "-qq", "source", "--download-only", f"python{majmin}"],
                        f"apt-get source python{majmin}", cwd=apt / "dl", timeout=900,
                        check=False)
        origs = sorted((apt / "dl").glob(f"python{majmin}_{version}.orig.tar.*"))
        if not origs:
            raise PortError(f"apt-get source python{majmin}: no upstream tarball for Python "
                            f"{version} (exit {proc.returncode})\n{proc.stderr[-2000:]}")
        dest.mkdir(exist_ok=True)
        with tarfile.open(origs[0]) as t:
            for m in t.getmembers():
                rel = m.name.split("/", 1)[-1]
                if rel in files:
                    m.name = rel
                    t.extract(m, dest, filter="data")
        missing = [f for f in files if not (dest / f).exists()]
        if missing:
            raise PortError(f"{origs[0].name}: no {', '.join(missing)}")
        return dest

    def stdlib_ext(self, name: str) -> Path:
        """CPython's own ``Modules/NAME.c`` as a non-PIC ``NAME.cosmoext``; its directory."""
        out_dir = self.root / "stdlib-nopic"
        out = out_dir / f"{name}.cosmoext"
        stamp = out_dir / f"{name}.stamp"
        if out.exists() and stamp.exists() and stamp.read_text() == self.stamp:
            return out_dir
        src = self.cpython_sources([f"Modules/{name}.c", f"Modules/clinic/{name}.c.h"])
        self.log(f"building the stdlib module {name} from CPython's Modules/{name}.c")
        self.run([sys.executable, "-m", "cosmoext", "build-ext", "--name", name, "--no-pic",
                  str(src / "Modules" / f"{name}.c"), "-o", str(out)],
                 f"cosmoext build-ext {name}")
        stamp.write_text(self.stamp)
        return out_dir


def _deb_src_lines() -> str:
    """One-line deb-src entries for this machine's deb sources."""
    lines: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for ln in stanza.splitlines():
                if ln and not ln.startswith(("#", " ")) and ":" in ln:
                    k, _, v = ln.partition(":")
                    fields[k.strip().lower()] = v.strip()
            if "deb" not in fields.get("types", "").split() or \
                    fields.get("enabled", "yes").lower() == "no":
                continue
            signed = fields.get("signed-by")
            opt = f"[signed-by={signed}] " if signed else ""
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    lines.append(f"deb-src {opt}{uri} {suite} {fields.get('components', '')}")
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for ln in legacy.read_text().splitlines():
            if ln.strip().startswith("deb "):
                lines.append("deb-src " + ln.strip()[4:])
    if not lines:
        raise PortError("no Debian apt sources found (/etc/apt/sources.list.d/*.sources)")
    return "\n".join(lines) + "\n"


def _same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths of .py/.c/.cpp files that differ between two test directories."""
    diff = []
    for p in sorted(b.rglob("*")):
        if p.suffix in (".py", ".c", ".cpp") and "__pycache__" not in p.parts:
            q = a / p.relative_to(b)
            if not q.exists() or q.read_bytes() != p.read_bytes():
                diff.append(str(p.relative_to(b)))
    return diff


LAUNCH = ("import runpy, sys; from support import cxguard; cxguard.install_recorder(); "
          "sys.argv[0] = 'pytest'; runpy.run_module('pytest', run_name='__main__', alter_sys=True)")
SUMMARY = re.compile(
    r"(\d+) (subtests )?(passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")


def parse_counts(stdout: str) -> dict[str, int]:
    """Counts from pytest's closing line; unittest sub-tests as ``subtests_*``."""
    for line in reversed(stdout.splitlines()):
        if re.search(r"\b(passed|failed|errors?|skipped)\b", line) and " in " in line:
            counts = {o: 0 for o in OUTCOMES}
            for n, sub, word in SUMMARY.findall(line):
                key = ("subtests_" if sub else "") + ("error" if word.startswith("error")
                                                       else word)
                counts[key] = counts.get(key, 0) + int(n)
            return counts
    return {}


def run_port(work: Work, port: Port, interp: str) -> dict[str, Any]:
    """Build, install and run PORT's own test suite in INTERP; a result record."""
    if interp not in INTERPS:
        raise PortError(f"unknown interpreter {interp!r} ({', '.join(INTERPS)})")
    kind = {"host": "pic", "host-shared-cxx": "pic-shared-cxx", "embed": "nopic"}.get(interp,
                                                                                   "cosmo")
    pic = kind.startswith("pic")
    wheels = [work.wheel(port.requirement, kind)]
    modules = list(port.modules)
    standins: list[str] = []
    for tp in port.test_ports:
        if interp in COSMO and tp["requirement"] in port.cosmo_standins:
            standins.append(tp["requirement"].partition("==")[0])
            continue
        wheels.append(work.wheel(tp["requirement"], kind))
        modules += tp["modules"]
    src = work.sdist(port.requirement)
    target = src / f"cx-{interp}"
    shutil.rmtree(target, ignore_errors=True)
    pip, pip_env = [sys.executable, "-m", "pip"], None
    if interp in COSMO:  # as a Cosmopolitan Python user would: the APE's own pip
        pip, pip_env = [*work.python_cmd("cosmo"), "-m", "pip"], work.pip_env()
    work.run([*pip, "install", "-q", "--no-deps", "--no-compile", "--no-index",
              "--disable-pip-version-check", "--root-user-action=ignore", "--target",
              str(target), *map(str, wheels)], "pip install --target (the .cosmoext wheels)",
             env=pip_env)
    for mod in modules:
        *pkg, last = mod.split(".")
        where = target.joinpath(*pkg)
        if not (where / f"{last}.cosmoext").exists() or list(where.glob(f"{last}*.so")):
            raise PortError(f"{where}: expected {last}.cosmoext and no {last}*.so")
    standin_dir = work.root / f"standins-{interp}"
    shutil.rmtree(standin_dir, ignore_errors=True)
    if standins:
        standin_dir.mkdir()
        for name in standins:
            shutil.copy(STANDINS / f"{name}.py", standin_dir / f"{name}.py")
    if port.tests_in_sdist:
        tests_dir = Path(port.tests[0].format(target=target))
        diff = _same_tree(tests_dir, src / port.tests_in_sdist)
        if diff:
            raise PortError(f"installed tests differ from the sdist's {port.tests_in_sdist}: "
                            + ", ".join(diff[:10]))
    site = work.site(PYTEST + port.test_deps)
    stdlib_dirs = []
    if interp == "embed":
        stdlib_dirs = list(dict.fromkeys(work.stdlib_ext(m) for m in port.embed_stdlib))
    python = work.python_cmd(interp)
    report_path = work.root / f"report-{port.name}-{interp}.json"
    report_path.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CXGUARD_"))}
    env.update({
        "PYTHONPATH": os.pathsep.join(map(str, [target, *stdlib_dirs,
                                                *([standin_dir] if standins else []),
                                                site, TESTS])),
        "PYTHONNOUSERSITE": "1",
        "CXGUARD_MODULES": ",".join(modules),
        "CXGUARD_STDLIB": ",".join(port.embed_stdlib if interp == "embed" else []),
        "CXGUARD_EXPECT_PIC": "1" if pic else "0",
        "CXGUARD_REPORT": str(report_path),
    })
    if interp.endswith("-aarch64") and port.emulated_scale:  # run under qemu-aarch64
        env["CXGUARD_SCALE"] = ",".join(f"{a}={f}" for a, f in port.emulated_scale.items())
    tests = [t.format(target=target.relative_to(src)) for t in port.tests]
    # python -m pytest, with cxguard's failed-import recorder in place first.
    cmd = [*python, "-c", LAUNCH, "-q", "-p", "no:cacheprovider", "-p", "support.cxguard",
           "-rfEsxX", *tests]
    work.log(f"running {port.name}'s test suite in the {interp} interpreter ({kind} images)")
    t0 = time.perf_counter()
    proc = work.run(cmd, f"{port.name} test suite", cwd=src, env=env, timeout=3600, check=False)
    seconds = time.perf_counter() - t0
    counts = parse_counts(proc.stdout)
    guard: dict[str, Any] = {}
    if report_path.exists():
        guard = json.loads(report_path.read_text())
    prefix = f"{target.relative_to(src)}/"
    not_passed, unexplained = [], []
    for nodeid, rec in sorted(guard.get("outcomes", {}).items()):
        if rec["outcome"] == "passed":
            continue
        test = nodeid.removeprefix(prefix)
        known = port.not_passed_in(interp).get(test)
        ok = known is not None and known["outcome"] == rec["outcome"]
        entry = {"test": test, "outcome": rec["outcome"], "upstream_reason": rec["why"][:300],
                 "why": known["why"] if ok and known else None}
        not_passed.append(entry)
        if not ok:
            unexplained.append(entry)
    expected = {o: port.expect[interp].get(o, 0) for o in OUTCOMES}
    got = {o: counts.get(o, 0) for o in OUTCOMES}
    problems = list(guard.get("problems", []))
    if not guard:
        problems.append("cxguard wrote no report (pytest did not start the session)")
    if got != expected:
        problems.append(f"counts {got} differ from the expected {expected}")
    if counts.get("subtests_failed") or counts.get("subtests_error"):
        problems.append("unittest sub-tests failed")
    if unexplained:
        problems.append(f"{len(unexplained)} tests did not pass and are not explained in "
                        f"examples/{port.name}/port.toml")
    if proc.returncode != 0:
        problems.append(f"pytest exited with {proc.returncode}")
    return {
        "port": port.name, "requirement": port.requirement, "interp": interp,
        "images": {"pic": "PIC", "pic-shared-cxx": "PIC, shared C++ runtime",
                   "nopic": "non-PIC", "cosmo": "cosmocc (fat)"}[kind],
        "python": python, "cwd": str(src), "standins": standins,
        "pythonpath": env["PYTHONPATH"],
        "counts": got, "subtests_passed": counts.get("subtests_passed", 0),
        "expected": expected, "seconds": round(seconds, 1),
        "ok": not problems, "problems": problems, "not_passed": not_passed,
        "guard": guard.get("modules", []), "runtime": guard.get("runtime", {}),
        "not_found": guard.get("not_found", []),
        "returncode": proc.returncode,
        "output_tail": proc.stdout[-6000:] + proc.stderr[-3000:] if problems else "",
    }


def render(results: list[dict[str, Any]]) -> str:
    head = ["port", "interpreter", "images", "passed", "failed", "error", "skipped", "xfailed",
            "xpassed", "time", "result"]
    rows = [head]
    for r in results:
        c = r["counts"]
        rows.append([r["requirement"], r["interp"], r["images"],
                     *[str(c.get(o, 0)) for o in ("passed", "failed", "error", "skipped",
                                                  "xfailed", "xpassed")],
                     f"{r['seconds']:.0f} s", "as expected" if r["ok"] else "UNEXPECTED"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
           for row in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        for n in r["not_passed"]:
            why = n["why"] or f"NOT EXPLAINED (upstream: {n['upstream_reason']})"
            out.append(f"  {r['port']}/{r['interp']}: {n['outcome']} {n['test']}: "
                       f"{' '.join(why.split())}")
        for p in r["problems"]:
            out.append(f"  {r['port']}/{r['interp']}: PROBLEM: {p}")
        if r["problems"]:
            out.append(r["output_tail"])
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("ports", nargs="*", metavar="PORT",
                    help=f"ports to run (default: all: {', '.join(available_ports())})")
    ap.add_argument("--interp", choices=(*INTERPS, "both", "all"), default="both",
                    help="both: host and embed; all: also cosmo and cosmo-aarch64")
    ap.add_argument("--work", type=Path, help="work directory to keep and reuse")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the commands")
    args = ap.parse_args(argv)
    names = args.ports or available_ports()
    interps = {"both": INTERPS[:2], "all": INTERPS}.get(args.interp, (args.interp,))
    root = args.work or Path(tempfile.mkdtemp(prefix="cosmoext-ports-"))
    results = []
    try:
        ports = [load_port(n) for n in names]
        work = Work(root, verbose=args.verbose)
        for port in ports:
            for interp in interps:
                results.append(run_port(work, port, interp))
    except PortError as e:
        print(f"ports: error: {e}", file=sys.stderr)
        return 2
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif args.work is None:
            print(f"ports: work directory kept: {root}", file=sys.stderr)
    print(json.dumps(results, indent=1) if args.json else render(results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
