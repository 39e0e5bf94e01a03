"""Non-PIC images (what cosmocc emits) in this ordinary, dynamically linked CPython.

Its symbols live at high addresses (PIE executable, shared libpython), so
images that hold 32-bit absolute or PC-relative references to them cannot be
placed within reach, and images with static TLS have no reserve to use.  The
loader must say exactly that; an image that only needs the low 4 GiB for its
own addresses must load there.  (The embedded interpreter is where every
non-PIC image must load: see the embed tests.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_ext_suite import EXTENSIONS

from cosmoext import format as fmt

CHILD = r"""
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
        out[name] = {"ok": True, "base": base}
    except ImportError as e:
        after = rt.counters()
        out[name] = {"ok": False, "msg": str(e), "in_modules": name in sys.modules,
                     "leak": after["live_regions"] - before["live_regions"]}
print(json.dumps(out))
"""


def test_nonpic_images_in_dynamic_host(nopic_dir: Path) -> None:
    names = list(EXTENSIONS)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(nopic_dir), *names],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    kinds = set()
    for name in names:
        parts = name.split(".")
        path = nopic_dir.joinpath(*parts[:-1], parts[-1] + ".cosmoext")
        (img,) = fmt.parse(path.read_bytes())
        assert not img.flags & fmt.F_PIC
        r = res[name]
        if img.flags & fmt.F_STATIC_TLS:
            kinds.add("tls")
            assert not r["ok"], name
            assert "static (local-exec/initial-exec) thread-local storage" in r["msg"]
            assert "rebuild with --pic" in r["msg"] and str(path) in r["msg"]
        elif img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_HOST):
            kinds.add("reach")
            assert not r["ok"], name
            assert "non-PIC image" in r["msg"] and "--pic" in r["msg"], r["msg"]
            assert "cosmoext embed" in r["msg"] and str(path) in r["msg"]
        else:
            kinds.add("low")
            assert r["ok"], (name, r)
            assert r["base"] + img.vsize <= 1 << 32
        if not r["ok"]:
            assert not r["in_modules"] and r["leak"] == 0, (name, r)
    # The suite exercises all three outcomes.
    assert kinds == {"tls", "reach", "low"}, kinds
