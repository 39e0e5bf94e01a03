"""The linker driver: objects and archives -> ``ld -r`` -> ``layout.link_object``.

``ld -r`` (binutils) merges the inputs into one relocatable object with a
handful of sections, pulling archive members, deduplicating COMDAT groups
and dropping unreferenced sections; ``layout`` does the rest.
"""

from __future__ import annotations

import os
import tempfile
from importlib import resources

from .. import format as fmt
from .._proc import run_tool
from ..errors import LinkError
from . import elf
from .backends import get_backend
from .layout import link_object
from .model import Backend


def merge(inputs: list[str], *, ld: str, entry: str, out: str, emulation: str,
          verbose: bool = False, ld_map: str | None = None) -> None:
    """Run ``ld -r`` with cosmoext's merge script over objects and archives.

    Only what ``entry`` and the KEEP sections (``.init_array``, ``.fini_array``,
    ``.eh_frame``) reach survives ``--gc-sections``.  ``ld_map`` gets ld's own
    map: which archive member was pulled for which symbol, what was dropped."""
    script = resources.files("cosmoext") / "data" / "merge.ld"
    objs = [i for i in inputs if not i.endswith(".a")]
    archives = [i for i in inputs if i.endswith(".a")]
    for i in inputs:
        if not os.path.exists(i):
            raise LinkError(f"{i}: no such file")
    cmd = [ld, "-m", emulation, "-r", "--force-group-allocation", "-d", "-S",
           "--gc-sections", "-e", entry, "-T", str(script), "-o", out, *objs]
    if archives:
        cmd += ["--start-group", *archives, "--end-group"]
    if ld_map:
        cmd += ["-Map", ld_map, "--cref"]
    run_tool(cmd, "ld -r", verbose, error=LinkError)


def link(inputs: list[str], *, name: str, arch: str, target: str, python_abi: str,
         pic: bool = True, ld: str | None = None, verbose: bool = False,
         map_path: str | None = None) -> fmt.Image:
    """Link objects and archives into one Image for ``arch``.

    ``map_path`` (or $COSMOEXT_MAP_DIR/NAME.ARCH.map) gets a link map, and
    NAME.ARCH.ld.map next to it ld's map (why each archive member is in)."""
    if map_path is None and os.environ.get("COSMOEXT_MAP_DIR"):
        map_path = os.path.join(os.environ["COSMOEXT_MAP_DIR"], f"{name}.{arch}.map")
    backend = get_backend(arch)
    entries: set[str] = set()
    for path in inputs:
        if not path.endswith(".a") and os.path.exists(path):
            entries |= _prescan(path, backend)
    entry = f"PyInit_{name}"
    if entry not in entries and not any(i.endswith(".a") for i in inputs[:1]):
        hint = f" (found {', '.join(sorted(entries))}: is --name right?)" if entries else ""
        shown = ", ".join(os.path.basename(i) for i in inputs if not i.endswith(".a"))
        raise LinkError(f"no definition of {entry} in {shown}{hint}")
    with tempfile.TemporaryDirectory(prefix="cosmoext-ld-") as tmp:
        merged = os.path.join(tmp, "merged.o")
        merge(inputs, ld=ld or backend.default_ld, entry=entry, out=merged,
              emulation=backend.emulation, verbose=verbose,
              ld_map=os.path.splitext(map_path)[0] + ".ld.map" if map_path else None)
        obj = elf.read(merged)
    obj.path = ", ".join(os.path.basename(i) for i in inputs[:3]) + (
        ", ..." if len(inputs) > 3 else "")
    return link_object(obj, backend, name=name, target=target, python_abi=python_abi, pic=pic,
                       map_path=map_path)


def _prescan(path: str, backend: Backend) -> set[str]:
    """Name the input object when it holds a relocation we cannot handle;
    return the PyInit_* functions it defines."""
    obj = elf.read(path)
    if obj.machine != backend.machine:
        raise LinkError(f"{path}: ELF machine {obj.machine} is not {backend.arch}")
    for sec in obj.sections:
        for r in sec.relocs:
            if r.type not in backend.supported:
                raise backend.unsupported(path, sec.name, r.offset, r.type)
    return {s.name for s in obj.symbols if s.name.startswith("PyInit_")
            and s.shndx != elf.SHN_UNDEF and s.bind != elf.STB_LOCAL}
