"""compile -> link -> pack: the one build pipeline.

``cosmoext build-ext``, ``cosmoext link``, the PEP 517 hooks (through
``pep517.setuptools_hooks``) and the CMake package (through ``cosmoext
link``) all build with these functions, so flags, runtime archives, the
default target and PIC rule (``settings.Settings``) and the atomic write are
the same everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from . import format as fmt
from . import link as linker
from ._proc import run_tool, write_atomic
from .errors import CosmoextError
from .settings import Settings
from .toolchain import (
    ASM_SUFFIXES,
    C_SUFFIXES,
    CXX_SUFFIXES,
    DEBIAN_ARCH,
    TRIPLETS,
    Toolchain,
    get_toolchain,
    host_arch,
)

Progress = Callable[[str], None]


def _silent(line: str) -> None:
    pass


def _print(line: str) -> None:
    print(line, flush=True)


def cosmo_python_dir(settings: Settings, arch: str, *parts: str) -> str:
    """A folder of the Cosmopolitan CPython build (setting 'cosmo-python')."""
    root = settings.effective_cosmo_python()
    if not root:
        raise CosmoextError("setting 'cosmo-python': the cosmocc toolchain needs a "
                            "Cosmopolitan CPython build (headers, libpython); set "
                            "cosmo-python or COSMO_PYTHON to its folder")
    path = os.path.join(root, arch, *parts)
    if not os.path.isdir(path):
        raise CosmoextError(f"setting 'cosmo-python': {root} has no {arch}/"
                            f"{'/'.join(parts)} (expected a Cosmopolitan CPython build)")
    return path


def python_include_dirs(arch: str, settings: Settings | None = None) -> list[str]:
    """Python headers for building ``arch`` images.

    cosmocc: the Cosmopolitan CPython's (setting 'cosmo-python').  Otherwise
    the running interpreter's for its own architecture; for a cross build the
    target's multiarch headers (Debian: libpython3.X-dev:<arch>) come first,
    since pyconfig.h differs between architectures."""
    if settings is not None and settings.toolchain == "cosmocc":
        inc = cosmo_python_dir(settings, arch, "include")
        return [os.path.join(inc, d) for d in sorted(os.listdir(inc))
                if d.startswith("python")][:1] or [inc]
    own = sysconfig.get_paths()["include"]
    if arch == host_arch():
        return [own]
    ver = f"python{sysconfig.get_python_version()}"
    multiarch = f"/usr/include/{TRIPLETS[arch]}/{ver}"
    if not os.path.isdir(multiarch):  # pyconfig.h differs: the host's would be wrong
        deb = DEBIAN_ARCH[arch]
        raise CosmoextError(f"no {arch} Python headers ({multiarch}); install them with: "
                            f"dpkg --add-architecture {deb} && apt-get update && "
                            f"apt-get install lib{ver}-dev:{deb}")
    return [d for d in (multiarch, f"/usr/include/{ver}") if os.path.isdir(d)]


def toolchain(settings: Settings, arch: str) -> Toolchain:
    if settings.toolchain == "cosmocc" and settings.pic:
        raise CosmoextError("setting 'pic': cosmocc cannot make position-independent code "
                            "(it drops -fPIC); leave pic unset or false")
    if settings.cxx_runtime == "shared" and (settings.toolchain == "cosmocc"
                                             or settings.effective_target() == "cosmo"):
        raise CosmoextError("setting 'cxx-runtime': 'shared' needs a host target; cosmo "
                            "Pythons have no shared C++ runtime (cosmocc images link libcxx.a "
                            "and import the rest from the interpreter): use 'static'")
    return get_toolchain(settings.toolchain, arch, settings.cosmocc)


def compile_command(tc: Toolchain, settings: Settings, src: str, obj: str,
                    args: Sequence[str] = ()) -> list[str]:
    """The compiler command for one source: the toolchain's code-shape flags
    (PIC or not, sections, reserved registers), then ``args``."""
    cc = tc.cxx if src.endswith(CXX_SUFFIXES) else tc.cc
    return [cc, "-c", *tc.flags(settings.effective_pic()), *args, src, "-o", obj]


def run_compiles(cmds: list[list[str]], settings: Settings) -> None:
    """Run compiler commands, ``settings.jobs`` at a time (0: one per CPU)."""
    with ThreadPoolExecutor(max_workers=settings.jobs or os.cpu_count() or 1) as pool:
        list(pool.map(lambda c: run_tool(c, "compiler", settings.verbose), cmds))


def link_image(settings: Settings, arch: str, inputs: list[str], name: str, *,
               cxx: bool, tc: Toolchain | None = None, ld: str | None = None) -> fmt.Image:
    """Link objects (and static archives) into the ``arch`` image of module
    ``name``, with the toolchain's runtime archives (libgcc.a; libstdc++.a
    for C++) after them."""
    tc = tc or toolchain(settings, arch)
    shared = settings.cxx_runtime == "shared"
    return linker.link([*inputs, *tc.runtime_archives(cxx=cxx, shared_cxx=shared)],
                       name=name, arch=arch,
                       target=settings.effective_target(),
                       python_abi=settings.effective_python_abi(),
                       pic=settings.effective_pic(), ld=ld or tc.ld, verbose=settings.verbose)


def write_cosmoext(images: list[fmt.Image], output: str) -> str:
    """Pack images (one per architecture) into ``output``, atomically."""
    return write_atomic(output, fmt.pack(images))


def build_extension(name: str, sources: Sequence[str], settings: Settings | None = None, *,
                    output: str | None = None, include_dirs: Sequence[str] = (),
                    defines: Sequence[str] = (), cflags: Sequence[str] = (),
                    extra_objects: Sequence[str] = (), quiet: bool = False) -> str:
    """Compile ``sources`` and link module ``name`` for every architecture of
    ``settings``; returns the path of the written .cosmoext file."""
    s = settings or Settings()
    say = _silent if quiet else _print
    if not name.isidentifier():
        raise CosmoextError(f"--name {name!r} is not a valid module name "
                            "(use the last component, e.g. 'sub' for pkg.sub)")
    if not sources and not extra_objects:
        raise CosmoextError("no source files given")
    for src in sources:
        if not os.path.exists(src):
            raise CosmoextError(f"{src}: no such file")
        if not src.endswith(C_SUFFIXES + CXX_SUFFIXES + ASM_SUFFIXES):
            raise CosmoextError(f"{src}: unknown source type (expected .c, .cpp/.cc/.cxx, .S)")
    has_cxx = any(src.endswith(CXX_SUFFIXES) for src in sources)
    images = []
    for arch in s.arch:
        tc = toolchain(s, arch)
        tc.check(need_cxx=has_cxx)
        args = [*(f"-I{d}" for d in [*include_dirs, *python_include_dirs(arch, s)]),
                *(f"-D{d}" for d in defines), *cflags]
        with tempfile.TemporaryDirectory(prefix="cosmoext-build-") as tmp:
            objs = [os.path.join(tmp, f"{i}-{os.path.basename(src)}.o")
                    for i, src in enumerate(sources)]
            cmds = [compile_command(tc, s, src, obj, args) for src, obj in zip(sources, objs,
                                                                                 strict=True)]
            steps = len(cmds) + 1
            for n, src in enumerate(sources, 1):
                say(f"[{n}/{steps}] compile {src} ({arch})")
            run_compiles(cmds, s)
            say(f"[{steps}/{steps}] link {name} ({arch})")
            images.append(link_image(s, arch, [*objs, *extra_objects], name, cxx=has_cxx,
                                     tc=tc))
    return write_cosmoext(images, output or f"{name}.cosmoext")


def link_objects(inputs: Sequence[str], name: str, settings: Settings, *,
                 output: str | None = None, ld: str | None = None, cxx: bool = False,
                 cxx_compiler: str | None = None) -> str:
    """Link already-compiled objects for one architecture (``cosmoext link``,
    the CMake package).  The image is marked PIC when nothing in it needs a
    placement (whatever ``settings.pic`` says: the objects decide)."""
    if len(settings.arch) != 1:
        raise CosmoextError(f"setting 'arch': link takes objects of one architecture, got "
                            f"{', '.join(settings.arch)}")
    arch = settings.arch[0]
    tc: Toolchain | None
    try:
        tc = toolchain(settings, arch)
    except CosmoextError:
        if settings.toolchain != "gnu" or cxx:
            raise
        tc = None  # e.g. an architecture without a gnu toolchain: no runtime archives
    archives: list[str] = []
    if tc is not None:
        if cxx_compiler:
            tc = dataclasses.replace(tc, cxx=cxx_compiler)
        if cxx:
            archives = tc.runtime_archives(shared_cxx=settings.cxx_runtime == "shared")
        else:
            # Compiler helpers (__popcountdi2, __divti3, ...) for C objects too,
            # when this machine has the toolchain's libgcc.a; pulled only if used.
            with contextlib.suppress(CosmoextError):
                archives = tc.runtime_archives(cxx=False)
    img = linker.link([*inputs, *archives], name=name, arch=arch,
                      target=settings.effective_target(),
                      python_abi=settings.effective_python_abi(), pic=False,
                      ld=ld or (tc.ld if tc else None),
                      verbose=settings.verbose)
    if not img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_IMAGE | fmt.F_LOW_HOST | fmt.F_STATIC_TLS):
        img.flags |= fmt.F_PIC
    return write_cosmoext([img], output or f"{name}.cosmoext")
