"""``cosmoext build-ext``: compile C/C++ sources and link a .cosmoext file."""

from __future__ import annotations

import os
import sysconfig
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import format as fmt
from . import linker
from ._proc import run_tool
from .errors import CosmoextError
from .toolchain import (
    ASM_SUFFIXES,
    C_SUFFIXES,
    CXX_SUFFIXES,
    get_toolchain,
    host_python_abi,
    host_target,
)


@dataclass
class BuildSettings:
    """Everything one build needs; the CLI and the PEP 517 backend fill it."""

    name: str
    sources: list[str]
    output: str | None = None
    toolchain: str = "gnu"
    arch: list[str] = field(default_factory=lambda: ["x86_64"])
    pic: bool | None = None  # default: PIC for host targets, non-PIC for cosmo
    target: str | None = None
    python_abi: str | None = None
    include_dirs: list[str] = field(default_factory=list)
    defines: list[str] = field(default_factory=list)
    cflags: list[str] = field(default_factory=list)
    extra_objects: list[str] = field(default_factory=list)
    verbose: bool = False
    jobs: int = 0
    quiet: bool = False  # no progress lines (library use)


def python_include_dirs(arch: str) -> list[str]:
    """Python headers for building ``arch`` images.

    The running interpreter's for its own architecture; for a cross build the
    target's multiarch headers (Debian: libpython3.X-dev:<arch>) come first,
    since pyconfig.h differs between architectures."""
    from .toolchain import host_arch

    own = sysconfig.get_paths()["include"]
    if arch == host_arch():
        return [own]
    ver = f"python{sysconfig.get_python_version()}"
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}[arch]
    multiarch = f"/usr/include/{triplet}/{ver}"
    if not os.path.isdir(multiarch):  # pyconfig.h differs: the host's would be wrong
        deb = {"x86_64": "amd64", "aarch64": "arm64"}[arch]
        raise CosmoextError(f"no {arch} Python headers ({multiarch}); install them with: "
                            f"dpkg --add-architecture {deb} && apt-get update && "
                            f"apt-get install lib{ver}-dev:{deb}")
    return [d for d in (multiarch, f"/usr/include/{ver}") if os.path.isdir(d)]


def _compile(cmd: list[str], verbose: bool) -> None:
    run_tool(cmd, "compiler", verbose)


def _progress(s: BuildSettings, line: str) -> None:
    if not s.quiet:
        print(line, flush=True)


def build(s: BuildSettings) -> str:
    """Compile and link; returns the path of the written .cosmoext file."""
    if not s.name.isidentifier():
        raise CosmoextError(f"--name {s.name!r} is not a valid module name "
                            "(use the last component, e.g. 'sub' for pkg.sub)")
    if not s.sources and not s.extra_objects:
        raise CosmoextError("no source files given")
    for src in s.sources:
        if not os.path.exists(src):
            raise CosmoextError(f"{src}: no such file")
        if not src.endswith(C_SUFFIXES + CXX_SUFFIXES + ASM_SUFFIXES):
            raise CosmoextError(f"{src}: unknown source type (expected .c, .cpp/.cc/.cxx, .S)")
    target = s.target or ("cosmo" if s.toolchain == "cosmocc" else host_target())
    pic = s.pic if s.pic is not None else target != "cosmo"
    abi = s.python_abi or host_python_abi()
    has_cxx = any(src.endswith(CXX_SUFFIXES) for src in s.sources)
    images = []
    for arch in s.arch:
        tc = get_toolchain(s.toolchain, arch)
        tc.check(need_cxx=has_cxx)
        include = [*s.include_dirs, *python_include_dirs(arch)]
        base = tc.flags(pic) + [f"-I{d}" for d in include] + [f"-D{d}" for d in s.defines]
        with tempfile.TemporaryDirectory(prefix="cosmoext-build-") as tmp:
            cmds, objs = [], []
            for i, src in enumerate(s.sources):
                obj = os.path.join(tmp, f"{i}-{os.path.basename(src)}.o")
                cc = tc.cxx if src.endswith(CXX_SUFFIXES) else tc.cc
                cmds.append([cc, "-c", *base, *s.cflags, src, "-o", obj])
                objs.append(obj)
            for n, cmd in enumerate(cmds, 1):
                _progress(s, f"[{n}/{len(cmds) + 1}] compile {cmd[-3]} ({arch})")
            with ThreadPoolExecutor(max_workers=s.jobs or os.cpu_count() or 1) as pool:
                list(pool.map(lambda c: _compile(c, s.verbose), cmds))
            inputs = objs + list(s.extra_objects)
            inputs += tc.runtime_archives(cxx=has_cxx)
            _progress(s, f"[{len(cmds) + 1}/{len(cmds) + 1}] link {s.name} ({arch})")
            images.append(linker.link(inputs, name=s.name, arch=arch, target=target,
                                      python_abi=abi, pic=pic, ld=tc.ld, verbose=s.verbose))
    out = s.output or f"{s.name}.cosmoext"
    data = fmt.pack(images)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp_out = out + ".tmp"
    with open(tmp_out, "wb") as f:
        f.write(data)
    os.replace(tmp_out, out)
    return out
