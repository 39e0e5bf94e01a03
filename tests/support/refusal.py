"""What a refused load must look like: a clean one-line ImportError that names
the file, and nothing left behind (no module in sys.modules, no live region,
no mapping of the file, no address-space reservation)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# The loader's words for a non-PIC image with static TLS in a host that has no reserve.
STATIC_TLS = ("static (local-exec/initial-exec) thread-local storage", "rebuild with --pic")


def _maps() -> list[str]:
    with open("/proc/self/maps") as f:
        return f.read().splitlines()


def _reserved_bytes(maps: list[str]) -> int:
    """Total size of anonymous PROT_NONE mappings (where a leaked reservation would show)."""
    total = 0
    for line in maps:
        parts = line.split()
        if parts[1] == "---p" and len(parts) == 5:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            total += hi - lo
    return total


def refused(path: Path | str, name: str, *fragments: str) -> str:
    """Load path as name in this process; assert a clean ImportError containing
    fragments and nothing left behind; return its text."""
    import pytest

    import cosmoext
    from cosmoext import _runtime

    path = os.path.abspath(os.fspath(path))
    sys.modules.pop(name, None)
    before = _runtime.counters()
    maps_before = _maps()
    with pytest.raises(ImportError) as ei:
        cosmoext.load(path, name)
    e = ei.value
    msg = str(e)
    assert type(e) is ImportError, f"{type(e).__name__}: {msg}"
    assert msg.startswith(f"cannot load {path}: "), msg
    assert "\n" not in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert e.name == name and e.path == path
    assert name not in sys.modules, "a half-initialised module was left in sys.modules"
    after = _runtime.counters()
    for key in ("live_regions", "live_bytes", "loaded"):
        assert after[key] == before[key], f"{key}: {before[key]} -> {after[key]}: {msg}"
    maps_after = _maps()
    left = [line for line in maps_after if line.endswith(path)]
    assert len(left) <= sum(line.endswith(path) for line in maps_before), \
        "file still mapped after a failed load:\n" + "\n".join(left)
    assert _reserved_bytes(maps_after) <= _reserved_bytes(maps_before), \
        "address space reservation left behind after a failed load"
    return msg


# For other interpreters: ``python -c IMPORT_CHILD ROOT NAME...`` imports each NAME
# from ROOT through the import system and prints one JSON object, per name either
# {"ok": true, "base": ..., "file": ...} or {"ok": false, "msg": ..., "in_modules": ...,
# "leak": live regions left by the failed import}.
IMPORT_CHILD = r"""
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
import cosmoext._hook; cosmoext._hook.install()
import cosmoext._runtime as rt
out = {}
for name in sys.argv[2:]:
    before = rt.counters()
    try:
        m = importlib.import_module(name)
        base = [i["base"] for i in rt.images() if i["path"] == m.__file__][0]
        out[name] = {"ok": True, "base": base, "file": m.__file__}
    except ImportError as e:
        after = rt.counters()
        out[name] = {"ok": False, "msg": str(e), "in_modules": name in sys.modules,
                     "leak": after["live_regions"] - before["live_regions"]}
print(json.dumps(out))
"""


def refused_in_child(rec: dict[str, Any], path: Path | str, *fragments: str) -> str:
    """One IMPORT_CHILD record: a clean refusal of ``path`` with ``fragments``."""
    assert not rec["ok"], rec
    msg = rec["msg"]
    assert "\n" not in msg and str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    assert not rec["in_modules"] and rec["leak"] == 0, rec
    return msg
