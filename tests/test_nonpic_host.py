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

from support.extensions import EXTENSIONS, image_path
from support.refusal import IMPORT_CHILD, STATIC_TLS, refused_in_child

from cosmoext import format as fmt


def test_nonpic_images_in_dynamic_host(nopic_dir: Path) -> None:
    names = list(EXTENSIONS)
    proc = subprocess.run([sys.executable, "-c", IMPORT_CHILD, str(nopic_dir), *names],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    kinds = set()
    for name in names:
        path = image_path(nopic_dir, name)
        (img,) = fmt.parse(path.read_bytes())
        assert not img.flags & fmt.F_PIC
        r = res[name]
        if img.flags & fmt.F_STATIC_TLS:
            kinds.add("tls")
            refused_in_child(r, path, *STATIC_TLS)
        elif img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_HOST):
            kinds.add("reach")
            refused_in_child(r, path, "non-PIC image", "--pic", "cosmoext embed")
        else:
            kinds.add("low")
            assert r["ok"], (name, r)
            assert r["base"] + img.vsize <= 1 << 32
    # The suite exercises all three outcomes.
    assert kinds == {"tls", "reach", "low"}, kinds
