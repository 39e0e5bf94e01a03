"""The one settings model of cosmoext, documented field by field.

Every knob a build or ``cosmoext embed`` has is one field of ``Settings``.
From it come:

* ``[tool.cosmoext]`` in pyproject.toml and ``-C key=value`` (``pip wheel``,
  ``python -m build``, ``cosmoext wheel``): ``load()``; later sources win;
  an unknown key is an error with a did-you-mean hint;
* the command-line flags of ``build-ext``, ``link``, ``embed``:
  ``add_arguments()`` / ``from_args()``;
* the settings table in the README: ``markdown_table()`` (a test checks it).

Defaults that depend on other settings (the target, PIC) are computed in one
place, ``Settings.effective_target()`` / ``effective_pic()``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import CosmoextError
from .toolchain import ARCHES, TOOLCHAINS, host_arch, host_python_abi, host_target

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
BUILD, EMBED = "build", "embed"


def _setting(default: Any = None, *, doc: str, scopes: tuple[str, ...] = (BUILD,),
             kind: str = "str", choices: tuple[str, ...] = (), factory: Any = None,
             shown_default: str | None = None) -> Any:
    meta = {"doc": doc, "scopes": scopes, "kind": kind, "choices": choices,
            "shown_default": shown_default}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    """What to build and how; see the module docstring for where each comes from."""

    target: str | None = _setting(
        doc="Platform the images are for: `cosmo` (Cosmopolitan APE Pythons) or a host "
            "platform such as `linux-gnu`; recorded in the file, the loader refuses others.",
        shown_default="`cosmo` with cosmocc, else this interpreter's")
    arch: list[str] = _setting(
        doc="Architectures, one image each in the same file (`x86_64`, `aarch64`; "
            "comma-separated or a list).", scopes=(BUILD, EMBED), kind="list", choices=ARCHES,
        factory=lambda: [host_arch()], shown_default="this machine's")
    toolchain: str = _setting(
        "gnu", doc="Compilers that make the objects: `gnu` (gcc), `clang`, or `cosmocc` "
                   "(Cosmopolitan's; where it is found: the `cosmocc` setting).",
        scopes=(BUILD, EMBED), choices=TOOLCHAINS)
    cosmocc: str | None = _setting(
        doc="Root of a cosmocc toolchain (the folder holding `bin/cosmocc`); also the "
            "`COSMOCC` environment variable.", scopes=(BUILD, EMBED),
        shown_default="`$COSMOCC`, else `cosmocc` on `PATH`")
    cosmo_python: str | None = _setting(
        doc="A Cosmopolitan CPython build (`<arch>/include/pythonX.Y`, `<arch>/lib/"
            "libpythonX.Y.a`, `<arch>/Modules/config.c`, `Lib/`): its headers for cosmocc "
            "builds, the rest for `embed --toolchain cosmocc`; also `COSMO_PYTHON`.",
        scopes=(BUILD, EMBED), shown_default="`$COSMO_PYTHON`")
    pic: bool | None = _setting(
        doc="Compile position-independent code (`-fPIC`). cosmocc cannot; non-PIC images "
            "must be placed near the host and need its static TLS reserve.", kind="bool",
        shown_default="true for host targets, false for `cosmo`")
    python_abi: str | None = _setting(
        doc="Python ABI recorded in the file, e.g. `cp311`; the loader refuses others.",
        shown_default="this interpreter's")
    cxx_runtime: str = _setting(
        "static", doc="Where C++ images get the C++ runtime: `static` (the needed parts of "
                      "libstdc++.a linked into each image; loads anywhere) or `shared` (imported "
                      "from the `libstdc++.so.6` of the process, as native extensions do; host "
                      "CPython only, not the embedded or cosmo interpreters).",
        choices=("static", "shared"))
    jobs: int = _setting(0, doc="Parallel compile jobs (0: one per CPU).", kind="int")
    verbose: bool = _setting(False, doc="Show every command run and its output.",
                             scopes=(BUILD, EMBED), kind="bool")
    libpython: str | None = _setting(
        doc="The `libpythonX.Y.a` to link the interpreter from.", scopes=(EMBED,),
        shown_default="Debian's for the architecture")
    python_include: str | None = _setting(
        doc="Headers of that Python build.", scopes=(EMBED,),
        shown_default="`/usr/include/pythonX.Y`")
    config_c: str | None = _setting(
        doc="Builtin-module table (`config.c`) of that build.", scopes=(EMBED,),
        shown_default="`config.c` beside libpython")
    stdlib: str | None = _setting(
        doc="Directory or zip with the standard library the interpreter uses.",
        scopes=(EMBED,), shown_default="the build's own prefix")
    cc: str | None = _setting(doc="C compiler for the interpreter.", scopes=(EMBED,),
                              shown_default="the toolchain's")
    tls_reserve: int = _setting(
        64 * 1024, doc="Static TLS reserve (bytes) in every thread, for non-PIC images' "
                       "thread-locals.", scopes=(EMBED,), kind="int")

    def effective_target(self) -> str:
        return self.target or ("cosmo" if self.toolchain == "cosmocc" else host_target())

    def effective_pic(self) -> bool:
        return self.pic if self.pic is not None else self.effective_target() != "cosmo"

    def effective_python_abi(self) -> str:
        return self.python_abi or host_python_abi()

    def effective_cosmo_python(self) -> str | None:
        return self.cosmo_python or os.environ.get("COSMO_PYTHON") or None


def _fields(scope: str | None = None) -> list[Any]:
    return [f for f in fields(Settings) if scope is None or scope in f.metadata["scopes"]]


def _convert(f: Any, value: Any, origin: str) -> Any:
    """Check and convert one value for field ``f``; errors name the setting."""
    meta, key = f.metadata, f.name
    where = f"{origin}: setting '{key.replace('_', '-')}'"
    if meta["kind"] == "list":
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            items = [v.strip() for v in value if v.strip()]
        else:
            raise CosmoextError(f"{where}: expected a string or a list of strings, got {value!r}")
        bad = [v for v in items if meta["choices"] and v not in meta["choices"]]
        if bad or not items:
            noun = "architecture" if key == "arch" else "value"
            raise CosmoextError(f"{where}: unsupported {noun} {', '.join(bad) or '(none)'} "
                                f"(choose from {', '.join(meta['choices'])})")
        return list(dict.fromkeys(items))
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if meta["kind"] == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise CosmoextError(f"{where}: expected true or false, got {value!r}")
    if meta["kind"] == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise CosmoextError(f"{where}: expected a number, got {value!r}") from None
    if not isinstance(value, str):
        raise CosmoextError(f"{where}: expected a string, got {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise CosmoextError(f"{where}: unknown value {value!r} "
                            f"(choose from {', '.join(meta['choices'])})")
    if key == "target" and not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", value):
        raise CosmoextError(f"{where}: {value!r} is not a target name "
                            "(cosmo, or a host platform such as linux-gnu)")
    return value


def apply(s: Settings, key: str, value: Any, origin: str, scope: str = BUILD) -> None:
    """Set one setting by its key (``arch``, ``python-abi`` ...), checked."""
    key = key.removeprefix("cosmoext.").replace("-", "_")
    known = {f.name: f for f in _fields()}
    f = known.get(key)
    if f is None:
        names = [n.replace("_", "-") for n in known]
        close = difflib.get_close_matches(key.replace("_", "-"), names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(names)})"
        raise CosmoextError(f"{origin}: unknown setting '{key.replace('_', '-')}'{hint}")
    if scope not in f.metadata["scopes"]:
        raise CosmoextError(f"{origin}: setting '{key.replace('_', '-')}' applies to "
                            f"{' and '.join(f.metadata['scopes'])}, not to {scope}")
    setattr(s, key, _convert(f, value, origin))


def load(pyproject: dict[str, Any] | None = None,
         config_settings: dict[str, Any] | None = None) -> Settings:
    """Settings of a build from ``[tool.cosmoext]``, then ``-C`` (keys starting
    with ``-`` are setuptools' and left alone)."""
    s = Settings()
    table = ((pyproject or {}).get("tool") or {}).get("cosmoext") or {}
    if not isinstance(table, dict):
        raise CosmoextError("pyproject.toml: [tool.cosmoext] must be a table")
    for key, value in table.items():
        apply(s, key, value, "pyproject.toml [tool.cosmoext]")
    for key, value in (config_settings or {}).items():
        if not key.startswith("-"):
            apply(s, key, value, "config setting (-C)")
    return s


def to_dict(s: Settings) -> dict[str, Any]:
    """The settings as plain data (to hand to another process)."""
    return {f.name: getattr(s, f.name) for f in _fields()}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, scope: str) -> None:
    """The command-line flags of every setting of ``scope`` (defaults stay None
    so that ``from_args`` can tell what was given)."""
    for f in _fields(scope):
        meta, flag = f.metadata, _flag(f.name)
        doc = meta["doc"]
        if meta["shown_default"]:
            doc += f" Default: {meta['shown_default']}."
        doc = doc.replace("%", "%%").replace("`", "")
        if meta["kind"] == "bool":
            g = parser.add_mutually_exclusive_group()
            names = [flag] + (["-v"] if f.name == "verbose" else [])
            g.add_argument(*names, dest=f.name, action="store_true", default=None, help=doc)
            g.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name,
                           action="store_false", help=argparse.SUPPRESS if f.name == "verbose"
                           else f"the opposite of {flag}")
        else:
            names = [flag] + (["-j"] if f.name == "jobs" else [])
            parser.add_argument(*names, dest=f.name, default=None, help=doc,
                                metavar=f.name.upper().replace("_", "-"),
                                choices=meta["choices"] if meta["kind"] == "str" and
                                meta["choices"] else None)


def from_args(args: argparse.Namespace, scope: str) -> Settings:
    """Settings from parsed flags (see ``add_arguments``), checked like ``-C``."""
    s = Settings()
    for f in _fields(scope):
        value = getattr(args, f.name, None)
        if value is not None:
            apply(s, f.name, value, f"command line {_flag(f.name)}", scope)
    return s


def update_readme(path: str) -> bool:
    """Rewrite the table between the README's settings-table markers; True if changed."""
    with open(path) as f:
        text = f.read()
    begin, end = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"
    head, sep, rest = text.partition(begin)
    _, sep2, tail = rest.partition(end)
    if not (sep and sep2):
        raise CosmoextError(f"{path}: no {begin} ... {end} markers")
    new = f"{head}{begin}\n{markdown_table()}\n{end}{tail}"
    if new != text:
        with open(path, "w") as f:
            f.write(new)
    return new != text


def markdown_table() -> str:
    """The README's settings table, made from the model."""
    rows = ["| setting (`-C`, `[tool.cosmoext]`) | flag | used by | default | meaning |",
            "|---|---|---|---|---|"]
    for f in _fields():
        meta = f.metadata
        if meta["shown_default"]:
            default = meta["shown_default"]
        elif f.default is MISSING or f.default is None:
            default = "none"
        else:
            default = f"`{str(f.default).lower() if isinstance(f.default, bool) else f.default}`"
        used = ", ".join({BUILD: "builds", EMBED: "`embed`"}[x] for x in meta["scopes"])
        rows.append(f"| `{f.name.replace('_', '-')}` | `{_flag(f.name)}` | {used} | {default} "
                    f"| {meta['doc']} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python3 -m cosmoext.settings README.md
    import sys

    for readme in sys.argv[1:]:
        print(f"{readme}: {'updated' if update_readme(readme) else 'up to date'}")
