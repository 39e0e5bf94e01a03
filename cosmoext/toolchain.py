"""Toolchains: which compilers make the objects, with which flags.

``gnu`` and ``clang`` are the system compilers (stand-ins for cosmocc on
machines without it); ``cosmocc`` is Cosmopolitan's, whose objects are
always non-PIC.  Flags mirror what cosmocc does so stand-in objects have the
same shape: ``-fno-pic -fno-pie`` small code model, and on aarch64
``-ffixed-x18 -ffixed-x28``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

from .errors import ToolchainError

TOOLCHAINS = ("gnu", "clang", "cosmocc")
ARCHES = ("x86_64", "aarch64")
TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
CXX_SUFFIXES = (".cc", ".cpp", ".cxx", ".c++", ".C")
C_SUFFIXES = (".c",)
ASM_SUFFIXES = (".S", ".s")
INSTALL_HINTS = {
    "gcc": "apt-get install gcc", "g++": "apt-get install g++", "ld": "apt-get install binutils",
    "clang": "apt-get install clang", "clang++": "apt-get install clang",
    "aarch64-linux-gnu-gcc": "apt-get install gcc-aarch64-linux-gnu",
    "aarch64-linux-gnu-g++": "apt-get install g++-aarch64-linux-gnu",
    "aarch64-linux-gnu-ld": "apt-get install binutils-aarch64-linux-gnu",
    "cosmocc": "download cosmocc from cosmo.zip and put its bin/ on PATH (or set COSMOCC "
               "to the folder holding bin/cosmocc)",
}


def host_target() -> str:
    """The target name of the running interpreter, e.g. ``linux-gnu``."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    if multiarch.count("-") >= 2:
        return multiarch.split("-", 1)[1]
    if sys.platform == "darwin":
        return "darwin"
    return "linux-gnu" if sys.platform.startswith("linux") else sys.platform


def host_python_abi() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"


def host_arch() -> str:
    m = os.uname().machine
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


@dataclass
class Toolchain:
    name: str
    arch: str
    cc: str
    cxx: str
    ld: str
    target_flags: tuple[str, ...] = ()
    root: str | None = None  # cosmocc: the toolchain's folder (bin/, <arch>-linux-cosmo/)

    def check(self, need_cxx: bool = False) -> None:
        for tool in (self.cc, self.ld) + ((self.cxx,) if need_cxx else ()):
            if shutil.which(tool) is None:
                hint = INSTALL_HINTS.get(os.path.basename(tool))
                raise ToolchainError(f"toolchain '{self.name}' ({self.arch}): {tool} not found"
                                     + (f"; install it with: {hint}" if hint else ""))

    def flags(self, pic: bool) -> list[str]:
        f = ["-O2", "-ffunction-sections", "-fdata-sections", *self.target_flags]
        if pic:
            f += ["-fPIC"]
        else:
            f += ["-fno-pic", "-fno-pie"]
            if self.name != "cosmocc":
                f += ["-mcmodel=small"]
        if self.arch == "aarch64":
            f += ["-ffixed-x18", "-ffixed-x28"]
        return f

    def runtime_archives(self, cxx: bool = True, shared_cxx: bool = False) -> list[str]:
        """Static runtime archives linked into an image.

        Always libgcc.a (compiler helpers such as __popcountdi2 or __divti3,
        which C code needs too); libstdc++.a for C++ unless ``shared_cxx``
        (setting cxx-runtime = shared: its names stay imports, which the host
        runtime resolves in libstdc++.so.6).  Never libgcc_eh.a: all
        images share the interpreter's unwinder (imported through the export
        table, each image's .eh_frame registered with it), because a
        personality routine in one image must work on an unwind started in
        another, and libgcc's unwinder keeps per-copy state."""
        if self.name == "cosmocc":
            # Cosmopolitan: libc++ from libcxx.a; compiler helpers, libcxxabi
            # and the unwinder live in libcosmo.a, i.e. in the interpreter,
            # which exports them.
            lib = os.path.join(self.root or "", f"{self.arch}-linux-cosmo", "lib", "libcxx.a")
            if cxx and not os.path.isfile(lib):
                raise ToolchainError(f"toolchain 'cosmocc' ({self.arch}): {lib} not found")
            return [lib] if cxx else []
        out = []
        for name in (("libstdc++.a",) if cxx and not shared_cxx else ()) + ("libgcc.a",):
            try:
                p = subprocess.run([self.cxx if cxx else self.cc, *self.target_flags,
                                    f"-print-file-name={name}"],
                                   capture_output=True, text=True, check=True).stdout.strip()
            except (OSError, subprocess.CalledProcessError) as e:
                raise ToolchainError(f"{self.cxx}: cannot locate {name}: {e}") from e
            if not os.path.isabs(p) or not os.path.exists(p):
                raise ToolchainError(f"{self.cxx}: {name} not found (install the static "
                                     "C++ runtime, e.g. apt-get install libstdc++-12-dev)")
            out.append(p)
        return out


def cosmocc_root(setting: str | None = None, arch: str = "x86_64") -> str:
    """The cosmocc toolchain's folder: the ``cosmocc`` setting, else
    ``$COSMOCC``, else the folder above the ``cosmocc`` found on ``PATH``."""
    root = setting or os.environ.get("COSMOCC")
    origin = "setting 'cosmocc'" if setting else "COSMOCC"
    if not root:
        found = shutil.which("cosmocc")
        if found is None:
            raise ToolchainError(f"toolchain 'cosmocc' ({arch}): cosmocc not found on PATH; "
                                 + INSTALL_HINTS["cosmocc"])
        root, origin = os.path.dirname(os.path.dirname(os.path.realpath(found))), "PATH"
    if not os.path.isfile(os.path.join(root, "bin", "cosmocc")):
        raise ToolchainError(f"toolchain 'cosmocc' ({arch}): cosmocc not found at {root} "
                             f"(from {origin}): expected {root}/bin/cosmocc")
    return os.path.abspath(root)


def get_toolchain(name: str = "gnu", arch: str | None = None,
                  cosmocc: str | None = None) -> Toolchain:
    arch = arch or host_arch()
    if arch not in ARCHES:
        raise ToolchainError(f"unsupported architecture {arch!r} (choose {' or '.join(ARCHES)})")
    native = arch == host_arch()
    if name == "gnu":
        if native:
            return Toolchain("gnu", arch, "gcc", "g++", "ld")
        p = f"{TRIPLETS[arch]}-"
        return Toolchain("gnu", arch, p + "gcc", p + "g++", p + "ld")
    if name == "clang":
        tf = () if native else (f"--target={TRIPLETS[arch]}",)
        ld = "ld" if native else f"{TRIPLETS[arch]}-ld"
        return Toolchain("clang", arch, "clang", "clang++", ld, tf)
    if name == "cosmocc":
        root = cosmocc_root(cosmocc, arch)
        b = os.path.join(root, "bin")
        return Toolchain("cosmocc", arch, os.path.join(b, f"{arch}-unknown-cosmo-cc"),
                         os.path.join(b, f"{arch}-unknown-cosmo-c++"),
                         os.path.join(b, f"{arch}-linux-cosmo-ld"), root=root)
    raise ToolchainError(f"unknown toolchain {name!r} (choose from {', '.join(TOOLCHAINS)})")
