"""Which build routes work on this machine, and what is missing (``cosmoext doctor``).

Verdict first (is the default route, gnu for this machine's architecture and
this CPython, usable?), then every route, then what was found with versions,
then each missing piece with the command that installs it.  ``--json`` prints
the same as one object.  Exit status 0 when the default route works, 1 when
it does not.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from typing import Any

from ._proc import probe as _run
from .errors import CosmoextError
from .toolchain import (
    DEBIAN_ARCH,
    INSTALL_HINTS,
    TRIPLETS,
    Toolchain,
    get_toolchain,
    host_arch,
    host_python_abi,
    host_target,
)

SCHEMA = "cosmoext.doctor/1"


@dataclass
class Check:
    """One thing looked for: a tool, a static library, headers, the loader."""

    id: str
    kind: str
    found: bool
    path: str | None = None
    version: str | None = None
    install: str | None = None  # the command that provides it (when missing)
    note: str = ""


@dataclass
class Route:
    """A way to build (and load) extensions and what it needs."""

    id: str
    title: str
    needs: list[str]
    wants: list[str] = field(default_factory=list)  # recommended; not required
    default: bool = False


def _version_of(text: str | None) -> str | None:
    """The version number in a tool's --version output ("GNU ld ... 2.40" -> "2.40")."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), None)
    if line is None:
        return None
    m = (re.search(r"\bversion\s+v?(\d[\w.+~-]*)", line)
         or re.search(r"(\d+\.\d+[\w.+~-]*)\s*$", line) or re.search(r"(\d+\.\d+[\w.+~-]*)", line))
    return m.group(1) if m else line


def _cross_pkg(arch: str) -> str:
    return TRIPLETS[arch].replace("_", "-")  # x86-64-linux-gnu, aarch64-linux-gnu


def _tool_hint(tool: str) -> str:
    base = os.path.basename(tool)
    if base in INSTALL_HINTS:
        return INSTALL_HINTS[base]
    for arch, triplet in TRIPLETS.items():
        if base.startswith(triplet + "-"):
            what = base[len(triplet) + 1:]
            pkg = {"gcc": "gcc", "g++": "g++", "ld": "binutils"}.get(what, "binutils")
            return f"apt-get install {pkg}-{_cross_pkg(arch)}"
    if base.endswith("-linux-cosmo-ld") or base.startswith("cosmo"):
        return INSTALL_HINTS["cosmocc"]
    if base.startswith("qemu-"):
        return "apt-get install qemu-user"
    return {"cmake": "apt-get install cmake", "ninja": "apt-get install ninja-build",
            "gcc": "apt-get install gcc", "ld": "apt-get install binutils"}.get(
                base, f"install {base}")


class Doctor:
    def __init__(self) -> None:
        self.host = host_arch()
        self.cross = "aarch64" if self.host != "aarch64" else "x86_64"
        self.checks: dict[str, Check] = {}
        self.routes: list[Route] = []

    # -- probes -------------------------------------------------------------
    def add(self, c: Check) -> Check:
        self.checks.setdefault(c.id, c)
        return self.checks[c.id]

    def tool(self, name: str, kind: str, *, gcc_like: bool = False, note: str = "",
             alternatives: tuple[str, ...] = ()) -> Check:
        if name in self.checks:
            return self.checks[name]
        path = next((p for p in map(shutil.which, (name, *alternatives)) if p), None)
        if path is None:
            return self.add(Check(name, kind, False, install=_tool_hint(name), note=note))
        if gcc_like:
            version = _version_of(_run([path, "-dumpfullversion", "-dumpversion"]))
        else:
            version = _version_of(_run([path, "--version"]))
        return self.add(Check(name, kind, True, path=path, version=version, note=note))

    def compiler_lib(self, lib: str, compiler: Check, arch: str, *, flags: tuple[str, ...] = (),
                     pkg: str = "") -> Check:
        cid = lib if arch == self.host else f"{lib} ({arch})"
        if cid in self.checks:
            return self.checks[cid]
        if not compiler.found or compiler.path is None:
            return self.add(Check(cid, "static library", False, install=compiler.install,
                                  note=f"located by {compiler.id}, which is missing"))
        out = _run([compiler.path, *flags, f"-print-file-name={lib}"]) or ""
        if os.path.isabs(out) and os.path.exists(out):
            return self.add(Check(cid, "static library", True, path=os.path.realpath(out),
                                  note=f"via {compiler.id} -print-file-name"))
        return self.add(Check(cid, "static library", False, install=f"apt-get install {pkg}",
                              note=f"{compiler.id} -print-file-name={lib} finds nothing"))

    def python_headers(self) -> Check:
        inc = sysconfig.get_paths()["include"]
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        header = os.path.join(inc, "Python.h")
        if os.path.exists(header):
            return self.add(Check("Python.h", "headers", True, path=inc,
                                  version=_patchlevel(inc), note="this interpreter's headers"))
        hint = (f"apt-get install python{ver}-dev" if sys.prefix == "/usr" else
                f"reinstall this Python ({sys.prefix}) with its headers, or use Debian's "
                f"python{ver} (apt-get install python{ver}-dev)")
        return self.add(Check("Python.h", "headers", False, path=inc, install=hint,
                              note="this interpreter's headers"))

    def cross_python_headers(self, arch: str) -> Check:
        ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
        d = f"/usr/include/{TRIPLETS[arch]}/{ver}"
        cid = f"Python.h ({arch})"
        if os.path.exists(os.path.join(d, "pyconfig.h")):
            return self.add(Check(cid, "headers", True, path=d,
                                  version=_patchlevel(f"/usr/include/{ver}"),
                                  note="pyconfig.h for the target"))
        deb = DEBIAN_ARCH[arch]
        return self.add(Check(cid, "headers", False, path=d,
                              install=f"dpkg --add-architecture {deb} && apt-get update && "
                                      f"apt-get install lib{ver}-dev:{deb}",
                              note="the target's pyconfig.h (else this interpreter's is used)"))

    def loader(self) -> Check:
        try:
            from . import _runtime

            info = _runtime.info()
            version = (f"{info['machine']} {info['target']} {info['python_abi']}, "
                       f"{info['exports']} exports")
            return self.add(Check("cosmoext._runtime", "loader", True,
                                  path=getattr(_runtime, "__file__", None), version=version,
                                  note="loads .cosmoext files in this Python"))
        except Exception as e:  # any failure means: no usable loader
            return self.add(Check("cosmoext._runtime", "loader", False,
                                  install="reinstall cosmoext with its compiled loader "
                                          "(from a checkout: pip install --no-build-isolation .)",
                                  note=f"import failed: {e}"))

    def python_package(self, name: str, kind: str) -> Check:
        from importlib import metadata

        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            return self.add(Check(name, kind, False,
                                  install=f"{sys.executable} -m pip install {name}"))
        return self.add(Check(name, kind, True, version=version))

    # -- the survey ---------------------------------------------------------
    def survey(self) -> None:
        h, x = self.host, self.cross
        gnu, clang = get_toolchain("gnu", h), get_toolchain("clang", h)
        xgnu, xclang = get_toolchain("gnu", x), get_toolchain("clang", x)
        try:
            cosmo = get_toolchain("cosmocc", h)
        except CosmoextError:  # not on PATH, no COSMOCC: reported as the missing cosmocc
            cosmo = Toolchain("cosmocc", h, "cosmocc", "cosmoc++", f"{h}-linux-cosmo-ld")

        gcc = self.tool(gnu.cc, "compiler", gcc_like=True)
        gxx = self.tool(gnu.cxx, "compiler", gcc_like=True)
        self.tool(gnu.ld, "linker", note="merges objects (ld -r)")
        self.tool(clang.cc, "compiler")
        self.tool(clang.cxx, "compiler")
        xgcc = self.tool(xgnu.cc, "cross compiler", gcc_like=True)
        xgxx = self.tool(xgnu.cxx, "cross compiler", gcc_like=True)
        self.tool(xgnu.ld, "cross linker")
        self.tool(f"qemu-{x}", "emulator", alternatives=(f"qemu-{x}-static",),
                  note=f"runs {x} test programs")
        self.tool(cosmo.cc, "compiler", note="cosmocc, for this architecture")
        self.tool(cosmo.cxx, "compiler", note="cosmocc, for this architecture")
        self.tool(cosmo.ld, "linker", note="cosmocc's binutils")
        self.tool("cmake", "build tool", note="the CMake / scikit-build-core route")
        self.tool("ninja", "build tool", note="optional: CMake falls back to make")
        self.python_package("scikit-build-core", "build tool")

        major = (gcc.version or "12").split(".")[0]
        xmajor = (xgcc.version or major).split(".")[0]
        xdeb = DEBIAN_ARCH[x]
        host_libs = [self.compiler_lib("libstdc++.a", gxx, h, pkg=f"libstdc++-{major}-dev"),
                     self.compiler_lib("libgcc_eh.a", gxx, h, pkg=f"libgcc-{major}-dev"),
                     self.compiler_lib("libgcc.a", gxx, h, pkg=f"libgcc-{major}-dev")]
        cross_libs = [
            self.compiler_lib("libstdc++.a", xgxx, x, pkg=f"libstdc++-{xmajor}-dev-{xdeb}-cross"),
            self.compiler_lib("libgcc_eh.a", xgxx, x, pkg=f"libgcc-{xmajor}-dev-{xdeb}-cross"),
            self.compiler_lib("libgcc.a", xgxx, x, pkg=f"libgcc-{xmajor}-dev-{xdeb}-cross")]
        libc = self.compiler_lib("libc.a", gcc, h, pkg="libc6-dev")
        libc.note = "static libc for cosmoext embed; " + libc.note
        libpython = self.libpython()
        headers = self.python_headers()
        xheaders = self.cross_python_headers(x)
        loader = self.loader()

        # libgcc_eh.a (libgcc's static unwinder) is reported but not required:
        # whether C++ images link it is Toolchain.runtime_archives()'s call.
        hl = [c.id for c in host_libs if not c.id.startswith("libgcc_eh.a")]
        xl = [c.id for c in cross_libs if not c.id.startswith("libgcc_eh.a")]
        heh, xeh = host_libs[1].id, cross_libs[1].id
        self.routes = [
            Route(f"gnu-{h}", f"gcc/g++ for {h}, images for this CPython",
                  [gnu.cc, gnu.cxx, gnu.ld, *hl, headers.id, loader.id], wants=[heh],
                  default=True),
            Route(f"clang-{h}", f"clang/clang++ for {h}, images for this CPython",
                  [clang.cc, clang.cxx, clang.ld, *hl, headers.id], wants=[heh]),
            Route(f"gnu-{x}", f"cross build for {x} with {xgnu.cc}",
                  [xgnu.cc, xgnu.cxx, xgnu.ld, *xl, headers.id],
                  wants=[xeh, xheaders.id, f"qemu-{x}"]),
            Route(f"clang-{x}", f"cross build for {x} with clang --target={TRIPLETS[x]}",
                  [xclang.cc, xclang.cxx, xclang.ld, *xl, headers.id],
                  wants=[xeh, xheaders.id, f"qemu-{x}"]),
            Route("cosmocc", "Cosmopolitan cosmocc, target cosmo (verified with a toolchain "
                  "built from Cosmopolitan's source, not the official cosmocc)",
                  [cosmo.cc, cosmo.cxx, cosmo.ld]),
            Route("embed", "cosmoext embed: static interpreter with the loader built in",
                  [gnu.cc, gnu.ld, libc.id, libpython.id, headers.id]),
            Route("cmake", "CMake / scikit-build-core: find_package(cosmoext), "
                  "cosmoext_add_module()", ["cmake", "scikit-build-core", gnu.cc, headers.id],
                  wants=["ninja"]),
        ]

    def libpython(self) -> Check:
        from .embed import default_libpython

        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        cid = f"libpython{ver}.a"
        path = default_libpython(self.host, ver)
        if os.path.isfile(path):
            return self.add(Check(cid, "static library", True, path=path,
                                  version=_patchlevel(f"/usr/include/python{ver}"),
                                  note="for cosmoext embed"))
        return self.add(Check(cid, "static library", False, path=path,
                              install=f"apt-get install libpython{ver}-dev",
                              note="for cosmoext embed"))

    # -- report -------------------------------------------------------------
    def route_missing(self, r: Route) -> tuple[list[str], list[str]]:
        return ([n for n in r.needs if not self.checks[n].found],
                [n for n in r.wants if not self.checks[n].found])

    def report(self) -> dict[str, Any]:
        routes: list[dict[str, Any]] = []
        for r in self.routes:
            missing, wanted = self.route_missing(r)
            routes.append({"id": r.id, "title": r.title, "ok": not missing, "default": r.default,
                           "needs": r.needs, "missing": missing,
                           "recommended_missing": wanted})
        default = next(r for r in routes if r["default"])
        if default["ok"]:
            verdict = (f"OK: the default route ({default['id']}) can build C and C++ "
                       "extensions and load them in this Python")
        else:
            verdict = (f"NOT READY: the default route ({default['id']}) is missing "
                       + ", ".join(default["missing"]))
        return {
            "schema": SCHEMA,
            "ok": default["ok"],
            "verdict": verdict,
            "default_route": default["id"],
            "host": {"arch": self.host, "target": host_target(), "python": sys.version.split()[0],
                     "python_abi": host_python_abi(), "executable": sys.executable},
            "routes": routes,
            "checks": [asdict(c) for c in self.checks.values()],
            "install": _install_commands([c for c in self.checks.values() if not c.found]),
        }


def _patchlevel(include: str) -> str | None:
    try:
        with open(os.path.join(include, "patchlevel.h"), errors="replace") as f:
            m = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', f.read())
    except OSError:
        return None
    return m.group(1) if m else None


def _install_commands(missing: list[Check]) -> list[str]:
    """One apt-get line for every apt package, then the other commands, in order."""
    apt: list[str] = []
    other: list[str] = []
    for c in missing:
        if not c.install:
            continue
        if c.install.startswith("apt-get install ") and "&&" not in c.install:
            apt += [p for p in c.install.split()[2:] if p not in apt]
        elif c.install not in other:
            other.append(c.install)
    return ([f"apt-get install {' '.join(apt)}"] if apt else []) + other


def format_text(rep: dict[str, Any]) -> str:
    h = rep["host"]
    lines = [f"cosmoext doctor: {rep['verdict']}", "",
             f"this machine: {h['arch']}, target {h['target']}; Python {h['python']} "
             f"({h['python_abi']}) at {h['executable']}", "", "routes:"]
    for r in rep["routes"]:
        status = "ok" if r["ok"] else "missing"
        mark = " (default)" if r["default"] else ""
        lines.append(f"  {status:8} {r['id']:15} {r['title']}{mark}")
        if r["missing"]:
            lines.append(f"  {'':8} {'':15} missing: {', '.join(r['missing'])}")
        if r["recommended_missing"]:
            lines.append(f"  {'':8} {'':15} recommended, missing: "
                         f"{', '.join(r['recommended_missing'])}")
    found = [c for c in rep["checks"] if c["found"]]
    missing = [c for c in rep["checks"] if not c["found"]]
    if found:
        lines += ["", "found:"]
        width = min(40, max(len(c["version"] or "") for c in found))
        for c in found:
            ver = (c["version"] or "")[:width]
            lines.append(f"  {c['kind']:15} {c['id']:24} {ver:{width}} {c['path'] or ''}".rstrip())
    if missing:
        lines += ["", "missing (and how to install):"]
        for c in missing:
            note = f"  [{c['note']}]" if c["note"] else ""
            lines.append(f"  {c['kind']:15} {c['id']:24} {c['install'] or ''}{note}")
        lines += ["", "to install everything missing:"]
        lines += [f"  {cmd}" for cmd in rep["install"]]
    return "\n".join(lines)


def diagnose() -> dict[str, Any]:
    """Probe this machine; the report that ``--json`` prints."""
    d = Doctor()
    d.survey()
    return d.report()
