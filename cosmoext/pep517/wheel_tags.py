"""Give a wheel holding .cosmoext files the right tags, version and RECORD.

Tags:
* target ``cosmo``: ``cpXY-none-any``.  Cosmopolitan Python reports the
  host OS's platform tag, so no platform tag can match every OS an APE runs
  on; ``cpXY-none-any`` is in every CPython X.Y's supported tags (packaging's
  ``compatible_tags``).  The version gets the local label ``+cosmo`` so a
  cosmo wheel is never mistaken for a host one (pip shows it; the loader
  also refuses a target mismatch at import).
* host targets (``linux-gnu`` ...): ``cpXY-cpXY-<platform>`` for each
  architecture in the file, like any extension wheel, plus
  ``Requires-Dist: cosmoext`` (the loader comes from that package there).

The WHEEL file records ``Cosmoext-Target`` and ``Cosmoext-Arch``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import zipfile
from email.parser import Parser

from .. import format as fmt
from ..errors import CosmoextError

PLATFORMS = {"linux-gnu": "linux", "linux-musl": "linux"}
COSMO_LABEL = "cosmo"


def _record_hash(data: bytes) -> str:
    d = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={d.decode()}"


def compute_tags(target: str, arches: list[str]) -> list[str]:
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if target == "cosmo":
        return [f"{py}-none-any"]
    plat = PLATFORMS.get(target, target.replace("-", "_"))
    return [f"{py}-{py}-{plat}_{a}" for a in arches]


def new_version(version: str, target: str) -> str:
    if target != "cosmo":
        return version
    return f"{version}.{COSMO_LABEL}" if "+" in version else f"{version}+{COSMO_LABEL}"


def fix_metadata(text: str, version: str, target: str) -> str:
    """METADATA with the new version and, for host targets, the loader dependency."""
    lines = text.split("\n")
    out = []
    body_at = next((i for i, ln in enumerate(lines) if ln == ""), len(lines))
    for i, ln in enumerate(lines):
        if i < body_at and ln.startswith("Version:"):
            ln = f"Version: {version}"
        out.append(ln)
        if i == body_at - 1 and target != "cosmo" and not any(
                re.match(r"Requires-Dist:\s*cosmoext\b", x) for x in lines[:body_at]):
            out.append("Requires-Dist: cosmoext")
    return "\n".join(out)


def retag(wheel: str, out_dir: str, target: str, arches_hint: list[str] | None = None) -> str:
    """Rewrite ``wheel`` into ``out_dir`` with cosmoext tags; returns the new basename."""
    with zipfile.ZipFile(wheel) as z:
        files = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    dist_info = sorted({n.split("/")[0] for n in files if n.split("/")[0].endswith(".dist-info")})
    if len(dist_info) != 1:
        raise CosmoextError(f"{os.path.basename(wheel)}: expected one .dist-info directory")
    old_di = dist_info[0]
    natives = [n for n in files if n.endswith((".so", ".pyd", ".dylib"))]
    if natives:
        raise CosmoextError(f"{os.path.basename(wheel)}: holds shared objects "
                            f"({', '.join(natives[:3])}); only .cosmoext extensions are allowed")
    arches: list[str] = []
    for n, data in files.items():
        if n.endswith(".cosmoext"):
            try:
                images = fmt.parse(data)
            except fmt.FormatError as e:
                raise CosmoextError(f"{n}: {e}") from e
            for img in images:
                if img.target != target:
                    raise CosmoextError(f"{n}: built for target {img.target}, expected {target}")
                if img.arch_name not in arches:
                    arches.append(img.arch_name)
    if not arches:
        if arches_hint is None:  # editable wheels point at the source tree instead
            raise CosmoextError(f"{os.path.basename(wheel)}: no .cosmoext extension inside")
        arches = list(arches_hint)
    meta = Parser().parsestr(files[f"{old_di}/METADATA"].decode())
    name, version = meta["Name"], meta["Version"]
    version2 = new_version(version, target)
    dist = re.sub(r"[-_.]+", "_", name)
    new_di = f"{dist}-{version2}.dist-info"
    tags = compute_tags(target, arches)
    out: dict[str, bytes] = {}
    for n, data in files.items():
        top, _, rest = n.partition("/")
        if top == old_di:
            n = f"{new_di}/{rest}"
        elif top == old_di.replace(".dist-info", ".data"):
            n = f"{new_di.replace('.dist-info', '.data')}/{rest}"
        out[n] = data
    out[f"{new_di}/METADATA"] = fix_metadata(
        files[f"{old_di}/METADATA"].decode(), version2, target).encode()
    wheel_lines = [ln for ln in files[f"{old_di}/WHEEL"].decode().splitlines()
                   if ln.strip() and not ln.startswith(("Tag:", "Root-Is-Purelib:", "Cosmoext-"))]
    wheel_lines += ["Root-Is-Purelib: false", *[f"Tag: {t}" for t in tags],
                    f"Cosmoext-Target: {target}", f"Cosmoext-Arch: {', '.join(arches)}"]
    out[f"{new_di}/WHEEL"] = ("\n".join(wheel_lines) + "\n").encode()
    record = f"{new_di}/RECORD"
    out.pop(record, None)
    lines = [f"{n},{_record_hash(d)},{len(d)}" for n, d in sorted(out.items())]
    out[record] = ("\n".join([*lines, f"{record},,"]) + "\n").encode()
    tagstr = "-".join(["{}".format(".".join(sorted({t.split("-")[i] for t in tags})))
                       for i in range(3)])
    basename = f"{dist}-{version2}-{tagstr}.whl"
    os.makedirs(out_dir, exist_ok=True)
    dest = os.path.join(out_dir, basename)
    tmp = dest + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for n in sorted(out, key=lambda n: (n.startswith(new_di), n == record, n)):
            z.writestr(n, out[n])
    if os.path.abspath(wheel) != os.path.abspath(dest) and os.path.exists(wheel) and \
            os.path.dirname(os.path.abspath(wheel)) == os.path.abspath(out_dir):
        os.unlink(wheel)
    os.replace(tmp, dest)
    return basename


def fix_metadata_dir(metadata_directory: str, dist_info: str, target: str) -> str:
    """prepare_metadata_*: same version and dependencies as the final wheel."""
    path = os.path.join(metadata_directory, dist_info)
    with open(os.path.join(path, "METADATA")) as f:
        text = f.read()
    meta = Parser().parsestr(text)
    version2 = new_version(meta["Version"], target)
    with open(os.path.join(path, "METADATA"), "w") as f:
        f.write(fix_metadata(text, version2, target))
    new = f"{re.sub(r'[-_.]+', '_', meta['Name'])}-{version2}.dist-info"
    if new != dist_info:
        os.replace(path, os.path.join(metadata_directory, new))
    return new
