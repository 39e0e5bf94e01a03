"""Make setuptools' build_ext produce .cosmoext files, for any setuptools project.

Nothing project-specific: every setuptools (or distutils) extension build,
whatever custom ``build_ext`` subclass or Cython step it has, ends in
``self.compiler.compile(...)`` and ``self.compiler.link_shared_object(...)``.
``activate()`` wraps ``build_ext.build_extension`` so that, for each
extension, those two calls on its compiler object go to cosmoext's
toolchain and linker instead, and extension file names end in ``.cosmoext``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from .. import pipeline
from ..errors import CosmoextError
from ..settings import Settings
from ..toolchain import CXX_SUFFIXES, TRIPLETS

SUFFIX = ".cosmoext"
# Libraries the host provides through the export table (never linked in).
HOST_LIBS = {"c", "m", "pthread", "dl", "rt", "util", "gcc", "gcc_s", "stdc++", "python3",
             "python3.11", "crypt"}
_progress = {"n": 0}


def _say(settings: Settings, line: str) -> None:
    _progress["n"] += 1
    print(f"[{_progress['n']}] {line}", flush=True)


def _find_static(lib: str, dirs: list[str], arch: str) -> str | None:
    for d in [*dirs, "/usr/local/lib", f"/usr/lib/{TRIPLETS[arch]}", "/usr/lib"]:
        p = os.path.join(d, f"lib{lib}.a")
        if os.path.exists(p):
            return p
    return None


# Flags of the interpreter's (and the user's) CFLAGS that decide what code is
# generated, kept from the compiler command setuptools would have used.
_CODEGEN_FLAG = re.compile(r"-O[0-3sgz]?|-Ofast|-D\S+|-U\S+|-fwrapv|-fno-strict-aliasing")


def python_cflags(compiler: Any) -> list[str]:
    """The optimisation and semantics flags a native build of this extension gets.

    setuptools compiles with ``compiler.compiler_so``: the interpreter's
    sysconfig CFLAGS (a release CPython: ``-DNDEBUG -g -fwrapv -O3 -Wall``,
    or ``-O2`` on Debian) plus the user's CFLAGS/CPPFLAGS.  A port must
    generate the same code: ``-DNDEBUG`` turns the sources' ``assert()``s off,
    ``-fwrapv`` gives signed overflow the semantics CPython code is written
    for, ``-O`` sets the optimisation level.  Dropped: ``-g`` (images carry no
    debug info), ``-fPIC`` (cosmoext decides), warnings, and target-specific
    flags (``-m*``), which need not fit the image's architecture."""
    words = list(getattr(compiler, "compiler_so", None) or [])[1:]
    return [w for w in words if _CODEGEN_FLAG.fullmatch(w)]


class _Hooks:
    """Replacement compile/link for one distutils compiler object."""

    def __init__(self, compiler: Any, settings: Settings) -> None:
        self.compiler = compiler
        self.s = settings
        self.cxx_objects: set[str] = set()
        self.python_flags = python_cflags(compiler)

    def _arch_obj(self, obj: str, arch: str) -> str:
        return obj if arch == self.s.arch[0] else f"{obj}.{arch}.o"

    def compile(self, sources: list[str], output_dir: str | None = None,
                macros: list[Any] | None = None, include_dirs: list[str] | None = None,
                debug: int = 0, extra_preargs: list[str] | None = None,
                extra_postargs: list[str] | None = None, depends: Any = None) -> list[str]:
        objects = self.compiler.object_filenames(sources, output_dir=output_dir or "")
        defs = []
        for m in [*(self.compiler.macros or []), *(macros or [])]:
            if len(m) == 1:
                defs.append(f"-U{m[0]}")
            elif m[1] is None:
                defs.append(f"-D{m[0]}")
            else:
                defs.append(f"-D{m[0]}={m[1]}")
        incs = [*(include_dirs or []), *(self.compiler.include_dirs or [])]
        for arch in self.s.arch:
            tc = pipeline.toolchain(self.s, arch)
            tc.check(need_cxx=any(src.endswith(CXX_SUFFIXES) for src in sources))
            # Python headers for the target architecture come first.
            args = [*self.python_flags, *defs,
                    *(f"-I{d}" for d in [*pipeline.python_include_dirs(arch, self.s), *incs]),
                    *(extra_preargs or [])]
            cmds = []
            for src, obj in zip(sources, objects, strict=True):
                out = self._arch_obj(obj, arch)
                os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
                if src.endswith(CXX_SUFFIXES):
                    self.cxx_objects.add(obj)
                _say(self.s, f"compile {src} ({arch})")
                cmds.append(pipeline.compile_command(tc, self.s, src, out, args)
                            + list(extra_postargs or []))
            pipeline.run_compiles(cmds, self.s)
        return list(objects)

    def link_shared_object(self, objects: list[str], output_filename: str,
                           output_dir: str | None = None, libraries: list[str] | None = None,
                           library_dirs: list[str] | None = None,
                           runtime_library_dirs: Any = None,
                           export_symbols: list[str] | None = None, debug: int = 0,
                           extra_preargs: list[str] | None = None,
                           extra_postargs: list[str] | None = None, build_temp: Any = None,
                           target_lang: str | None = None) -> None:
        if output_dir:
            output_filename = os.path.join(output_dir, output_filename)
        entry = next((e for e in export_symbols or [] if e.startswith("PyInit_")), None)
        if entry is None:
            base = os.path.basename(output_filename).split(".")[0]
            entry = f"PyInit_{base}"
        name = entry.removeprefix("PyInit_")
        libs = list(libraries or [])
        for a in [*(extra_preargs or []), *(extra_postargs or [])]:
            if a.startswith("-l"):
                libs.append(a[2:])
        cxx = (target_lang == "c++" or "stdc++" in libs
               or any(o in self.cxx_objects for o in objects))
        archives = []
        for lib in libs:
            if lib in HOST_LIBS:
                continue
            path = _find_static(lib, list(library_dirs or []), self.s.arch[0])
            if path is None:
                raise CosmoextError(f"extension {name}: library -l{lib} has no static "
                                    f"lib{lib}.a; .cosmoext images link libraries statically")
            archives.append(path)
        images = []
        for arch in self.s.arch:
            _say(self.s, f"link {name} ({arch})")
            images.append(pipeline.link_image(
                self.s, arch, [self._arch_obj(o, arch) for o in objects] + archives, name,
                cxx=cxx))
        if not output_filename.endswith(SUFFIX):
            output_filename = output_filename.rsplit(".", 1)[0].split(".cpython")[0] + SUFFIX
        pipeline.write_cosmoext(images, output_filename)


def _cosmoext_name(filename: str) -> str:
    import sysconfig

    for suffix in (sysconfig.get_config_var("EXT_SUFFIX") or "", ".abi3.so", ".so", ".pyd"):
        if suffix and filename.endswith(suffix):
            return filename[: -len(suffix)] + SUFFIX
    return filename if filename.endswith(SUFFIX) else filename + SUFFIX


def _build_ext_classes() -> list[Any]:
    """setuptools' build_ext and the distutils base class it (and some
    projects' own build_ext subclasses, e.g. simplejson's) derive from."""
    from setuptools.command.build_ext import build_ext

    classes = [build_ext]
    try:
        import distutils.command.build_ext as dbe  # setuptools' copy under _distutils_hack

        classes.append(dbe.build_ext)
    except ImportError:
        pass
    for base in build_ext.__mro__[1:]:
        if base.__name__ == "build_ext" and base not in classes:
            classes.append(base)
    return classes


def activate(settings: Settings) -> None:
    """Patch build_ext in this process (idempotent)."""
    global _settings
    _settings = settings
    os.environ["SETUPTOOLS_EXT_SUFFIX"] = SUFFIX
    for cls in _build_ext_classes():
        if "_cosmoext_active" in cls.__dict__:
            continue
        _wrap(cls)


_settings: Settings | None = None


def _wrap(cls: Any) -> None:
    orig_build_extension = cls.build_extension
    orig_get_ext_filename = cls.get_ext_filename

    def build_extension(self: Any, ext: Any) -> None:
        c = self.compiler
        if not getattr(c, "_cosmoext_hooked", False):
            assert _settings is not None
            hooks = _Hooks(c, _settings)
            c.compile = hooks.compile
            c.link_shared_object = hooks.link_shared_object
            c._cosmoext_hooked = True
        # Outputs in build/ may come from other settings (target, arch):
        # never trust their timestamps.
        self.force = True
        orig_build_extension(self, ext)

    def get_ext_filename(self: Any, fullname: str) -> str:
        return _cosmoext_name(orig_get_ext_filename(self, fullname))

    cls.build_extension = build_extension
    cls.get_ext_filename = get_ext_filename
    cls._cosmoext_active = True
