"""What a .cosmoext file holds: the ``--json`` object and the verdict-first text."""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

from . import format as fmt
from .exports.gen_exports import read_libc_list

SCHEMA = "cosmoext.inspect/1"


@functools.cache
def _export_table_names() -> frozenset[str]:
    """The curated C names of every export table (some look like C++ runtime
    names: libc's __cxa_atexit)."""
    return frozenset(read_libc_list(Path(__file__).parent / "exports" / "libc.txt"))


def _is_cxx_runtime_name(name: str) -> bool:
    """The loader's cx_cxx_name (runtime/cxcxx.h), less the export table's names."""
    return (name.startswith(("_Z", "__cxa_", "__gxx_")) or name == "__dynamic_cast") \
        and name not in _export_table_names()


def cxx_runtime(img: fmt.Image) -> str:
    """``shared`` if the image imports the C++ runtime (built with cxx-runtime
    = shared: it loads only where libstdc++.so.6 is), else ``static``."""
    shared = any(not i.weak and _is_cxx_runtime_name(i.name) for i in img.imports)
    return "shared" if shared else "static"


def describe(path: str) -> dict[str, Any]:
    """The --json object for a file (``valid`` false with ``error`` if it is not)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        images = fmt.parse(data)
    except (OSError, fmt.FormatError) as e:
        return {"schema": SCHEMA, "file": path, "valid": False, "error": str(e), "images": []}
    out = []
    for img in images:
        counts = Counter(fmt.FIXUP_NAMES.get(f.kind, str(f.kind)) for f in img.fixups)
        out.append({
            "arch": img.arch_name,
            "target": img.target,
            "python_abi": img.python_abi,
            "module": img.name,
            "flags": [n for b, n in fmt.FLAG_NAMES.items() if img.flags & b],
            "needs_near_placement": bool(img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_IMAGE
                                                       | fmt.F_LOW_HOST)),
            "needs_static_tls": bool(img.flags & fmt.F_STATIC_TLS),
            "cxx_runtime": cxx_runtime(img),
            "vsize": img.vsize,
            "segments": [{"kind": fmt.SEG_NAMES[s.kind], "vaddr": s.vaddr, "memsz": s.memsz,
                          "filesz": len(s.data)} for s in img.segments],
            "fixups": dict(sorted(counts.items())),
            "imports": [{"name": i.name, "weak": i.weak} for i in img.imports],
            "tls": {"filesz": img.tls[1], "memsz": img.tls[2], "align": img.tls[3]},
            "init_array": img.init_array[1],
            "sha256": img.sha256.hex(),
        })
    return {"schema": SCHEMA, "file": path, "valid": True, "images": out}


def format_text(d: dict[str, Any]) -> str:
    """Verdict first, then one block per image."""
    if not d["valid"]:
        return f"{d['file']}: INVALID: {d['error']}"
    imgs = d["images"]
    lines = [f"{d['file']}: OK: module '{imgs[0]['module']}', {len(imgs)} image(s) "
             f"({', '.join(i['arch'] for i in imgs)})"]
    for i in imgs:
        place = ("needs near placement (non-PIC)" if i["needs_near_placement"]
                 else "position-independent")
        lines.append(f"  {i['arch']}: target {i['target']}, {i['python_abi']}, {place}"
                     + (", static TLS" if i["needs_static_tls"] else "")
                     + (", C++ runtime from libstdc++.so.6 (cxx-runtime = shared)"
                        if i["cxx_runtime"] == "shared" else ""))
        lines.append("    segments: "
                     + ", ".join(f"{s['kind']} {s['memsz']}" for s in i["segments"]))
        lines.append("    fixups: "
                     + (", ".join(f"{k} {v}" for k, v in i["fixups"].items()) or "none"))
        names = [m["name"] + (" (weak)" if m["weak"] else "") for m in i["imports"]]
        lines.append(f"    imports ({len(names)}): " + ", ".join(names))
    return "\n".join(lines)
