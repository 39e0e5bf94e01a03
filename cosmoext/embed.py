"""``cosmoext embed``: link a static, non-PIE interpreter with the loader built in.

Inputs: a ``libpython*.a``, the builtin-module table of that build
(``config.c`` beside it, as Debian ships it) and that build's headers.  The
result is a CPython executable with no dynamic loading at all, in which
``cosmoext._runtime`` is a builtin module, the export table is generated
from exactly that libpython and libc, the static TLS reserve exists, and the
``.cosmoext`` finder is active at start-up (the pure-Python half of cosmoext
is a zip appended to the executable).  With cosmocc and a Cosmopolitan
libpython the same steps make a ``python.com`` (not verified here).
"""

from __future__ import annotations

import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ._proc import run_tool
from .errors import CosmoextError, ToolchainError
from .toolchain import get_toolchain, host_arch

RUNTIME_SOURCES = ("module.c", "cxload.c", "cxtls.c", "cxdl.c", "cxsha256.c", "cxcodemem.c",
                   "cxclosure.c", "cxpyclosure.c", "embed_main.c")
TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}


@dataclass
class EmbedSettings:
    output: str
    libpython: str | None = None
    python_include: str | None = None
    config_c: str | None = None
    toolchain: str = "gnu"
    cc: str | None = None
    arch: str | None = None
    stdlib: str | None = None
    tls_reserve: int = 64 * 1024
    verbose: bool = False


def default_libpython(arch: str, version: str = "3.11") -> str:
    return f"/usr/lib/python{version}/config-{version}-{TRIPLETS[arch]}/libpython{version}.a"


def _lib_version(libpython: str) -> str:
    m = re.search(r"libpython(\d+\.\d+)", os.path.basename(libpython))
    if not m:
        raise CosmoextError(f"--libpython {libpython}: not a libpythonX.Y.a archive")
    return m.group(1)


def _header_version(include: str) -> str:
    text = Path(include, "patchlevel.h").read_text(errors="replace")
    m = re.search(r'#define\s+PY_VERSION\s+"([^"]+)"', text)
    if not m:
        raise CosmoextError(f"{include}/patchlevel.h: no PY_VERSION")
    return m.group(1)


def check_inputs(libpython: str, include: str) -> str:
    """Validate libpython and headers; return the full Python version."""
    majmin = _lib_version(libpython)
    if not os.path.isfile(libpython):
        raise CosmoextError(f"--libpython {libpython}: no such file; on Debian install it with: "
                            f"apt-get install libpython{majmin}-dev")
    with open(libpython, "rb") as f:
        data = f.read()
    if not data.startswith(b"!<arch>\n"):
        raise CosmoextError(f"--libpython {libpython}: not an ar archive")
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise CosmoextError(f"--python-include {include}: no Python.h there; on Debian install "
                            f"it with: apt-get install libpython{majmin}-dev")
    full = _header_version(include)
    if not full.startswith(majmin + ".") or full.encode() + b"\0" not in data:
        raise CosmoextError(f"--libpython {libpython} does not match the headers in {include} "
                            f"(headers are Python {full}); use the headers of the same build")
    return full


def builtin_modules(config_c: str) -> list[str]:
    """Names in the builtin-module table (config.c) of a CPython build."""
    return re.findall(r'\{"(\w+)",\s*\w+\}', Path(config_c).read_text())


def _module_libs(config_c: str, makefile: str | None) -> list[str]:
    """Link flags the builtin modules of config.c need (from the build's Makefile)."""
    names = builtin_modules(config_c)
    flags: list[str] = []
    if makefile and os.path.exists(makefile):
        text = Path(makefile).read_text(errors="replace")
        for name in names:
            m = re.search(rf"^MODULE_{name.upper()}_LDFLAGS=(.*)$", text, re.M)
            if m:
                flags += [f for f in m.group(1).split() if f.startswith("-l")]
    out = []
    for f in flags + ["-lm", "-lpthread", "-ldl", "-lutil"]:
        if f not in out:
            out.append(f)
    return out


def _run(cmd: list[str], verbose: bool, what: str) -> None:
    run_tool(cmd, what, verbose)


def _package_zip(dest: str) -> bytes:
    """The pure-Python part of cosmoext, as a zip to append to the executable.

    Modules carry unchecked-hash .pyc files next to their source, so start-up
    does not compile them (the embedded interpreter has the same bytecode
    version as the one running this, or it would not have passed
    check_inputs)."""
    root = Path(__file__).parent
    tmp = dest + ".zip"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(root.rglob("*")):
            if not p.is_file() or "__pycache__" in p.parts or \
                    p.suffix not in (".py", ".ld", ".txt", ".pth"):
                continue
            arc = Path("cosmoext") / p.relative_to(root)
            z.write(p, str(arc))
            if p.suffix == ".py":
                pyc = dest + ".pyc"
                py_compile.compile(str(p), cfile=pyc, dfile=str(arc), doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
                z.write(pyc, str(arc.with_suffix(".pyc")))
    data = Path(tmp).read_bytes()
    os.unlink(tmp)
    return data


def embed(s: EmbedSettings) -> str:
    arch = s.arch or host_arch()
    tc = get_toolchain(s.toolchain, arch)
    cc = s.cc or tc.cc
    if shutil.which(cc) is None:
        raise ToolchainError(f"C compiler {cc} not found; install it with: apt-get install gcc"
                             if s.toolchain == "gnu" else f"C compiler {cc} not found")
    libpython = s.libpython or default_libpython(arch)
    majmin = _lib_version(libpython)
    include = s.python_include or f"/usr/include/python{majmin}"
    version = check_inputs(libpython, include)
    config_c = s.config_c or os.path.join(os.path.dirname(libpython), "config.c")
    if not os.path.isfile(config_c):
        raise CosmoextError(f"no builtin-module table {config_c} beside the libpython; give "
                            "--config-c (the config.c of the same CPython build)")
    makefile = os.path.join(os.path.dirname(libpython), "Makefile")
    rt = resources.files("cosmoext") / "runtime"
    gen = Path(__file__).parent / "exports" / "gen_exports.py"
    libc_list = Path(__file__).parent / "exports" / "libc.txt"

    def cc_file(name: str) -> str | None:
        out = subprocess.run([cc, *tc.target_flags, f"-print-file-name={name}"],
                             capture_output=True, text=True).stdout.strip()
        return out if os.path.isabs(out) and os.path.exists(out) else None

    libc = cc_file("libc.a")
    if libc is None:
        raise CosmoextError(f"{cc}: static libc.a not found; install it with: apt-get install "
                            "libc6-dev")
    libc_libs = [p for p in (libc, cc_file("libm.a"), cc_file("libpthread.a")) if p]
    out = os.path.abspath(s.output)
    print(f"[1/4] export table from {os.path.basename(libpython)} (Python {version}) and libc",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="cosmoext-embed-") as tmp:
        exports_c = os.path.join(tmp, "cx_exports.c")
        cmd = [sys.executable, str(gen), "--out", exports_c, "--python-lib", libpython,
               "--libc-list", str(libc_list)]
        for lib in libc_libs:
            cmd += ["--libc-lib", lib]
        cross_nm = f"{TRIPLETS[arch]}-nm"  # plain nm reads other machines' ELF too
        if arch != host_arch() and shutil.which(cross_nm):
            cmd += ["--nm", cross_nm]
        _run(cmd, s.verbose, "export table generation")
        defs = ["-DCX_EMBEDDED=1", f"-DCX_STATIC_TLS_RESERVE={s.tls_reserve}"]
        builtins = builtin_modules(config_c)
        extra_srcs = []
        if "_contextvars" not in builtins:  # Debian ships it as a .so
            defs.append("-DCX_ADD_CONTEXTVARS=1")
            extra_srcs.append(str(rt / "stdlib" / "contextvars_builtin.c"))
        if s.stdlib:
            defs.append(f'-DCX_STDLIB="{os.path.abspath(s.stdlib)}"')
        base = [cc, *tc.target_flags, "-c", "-O2", "-fno-pie", "-fno-pic", f"-I{include}",
                f"-I{rt}", *defs]
        objs = []
        srcs = [str(rt / n) for n in RUNTIME_SOURCES] + extra_srcs + [exports_c, config_c]
        print(f"[2/4] compile the runtime ({len(srcs)} files)", flush=True)
        for i, src in enumerate(srcs):
            obj = os.path.join(tmp, f"{i}-{os.path.basename(src)}.o")
            extra = ["-fno-builtin", "-w"] if src == exports_c else []
            _run([*base, *extra, src, "-o", obj], s.verbose, "compile")
            objs.append(obj)
        libs = _module_libs(config_c, makefile)
        print(f"[3/4] link {out} (static, non-PIE; {' '.join(libs)})", flush=True)
        exe = os.path.join(tmp, "python")
        _run([cc, *tc.target_flags, "-static", "-no-pie", "-o", exe, *objs, libpython, *libs,
              "-Wl,--wrap=dlopen"], s.verbose, "link")
        print("[4/4] append the cosmoext package", flush=True)
        with open(exe, "ab") as f:
            f.write(_package_zip(exe))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(exe, out + ".tmp")
        os.chmod(out + ".tmp", 0o755)
        os.replace(out + ".tmp", out)
    return out
