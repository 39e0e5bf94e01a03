"""Building test images and re-sealing corrupted ones."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cosmoext import format as fmt
from cosmoext.pipeline import build_extension
from cosmoext.settings import Settings

from .extensions import EXTENSIONS, cflags, make_packages, sources


def build_ext(*, name: str, sources: Sequence[str], output: str, pic: bool | None = None,
              arch: list[str] | None = None, cflags: Sequence[str] = (),
              include_dirs: Sequence[str] = (), jobs: int = 1, quiet: bool = True,
              toolchain: str = "gnu", cxx_runtime: str = "static") -> str:
    """Build one test extension quietly (the library API the CLI uses)."""
    s = Settings(pic=pic, jobs=jobs, toolchain=toolchain, cxx_runtime=cxx_runtime)
    if arch:
        s.arch = list(arch)
    return build_extension(name, sources, s, output=output, cflags=cflags,
                           include_dirs=include_dirs, quiet=quiet)


def build_suite(root: Path, *, pic: bool | None, arch: list[str] | None = None,
                names: Iterable[str] | None = None, toolchain: str = "gnu",
                cxx_runtime: str = "static") -> Path:
    """Build the test extensions (default: all of EXTENSIONS) into ``root``, laid out
    for import (see :func:`support.extensions.make_packages`); return ``root``."""
    root.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> None:
        out = make_packages(root, name)
        build_ext(name=name.split(".")[-1], sources=sources(name), output=str(out), pic=pic,
                  arch=arch, cflags=cflags(name), jobs=1, quiet=True, toolchain=toolchain,
                  cxx_runtime=cxx_runtime)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(one, list(names or EXTENSIONS)))
    return root


def reseal(data: bytes | bytearray, *, sha256: bool = True) -> bytes:
    """Recompute every image's digests and the checksums in place (for tests that
    corrupt tables): the metadata digest, each image's CRC-32C and (unless
    ``sha256=False``, to reach the SHA-256 check) SHA-256, then the file header's
    head_crc32c, which covers the image table."""
    buf = bytearray(data)
    count, table = fmt.FILE_HDR.unpack_from(buf, 0)[4], fmt.FILE_HDR.unpack_from(buf, 0)[7]
    for i in range(count):
        pos = table + i * fmt.IMAGE_ENT.size
        arch, r0, _, off, size, digest = fmt.IMAGE_ENT.unpack_from(buf, pos)
        if size >= fmt.IMAGE_HDR.size and off + size <= len(buf):
            img = buf[off:off + size]
            buf[off + fmt.META_DIGEST_AT:off + fmt.META_DIGEST_AT + 32] = fmt.meta_digest(img)
        blob = bytes(buf[off:off + size])
        if sha256:
            digest = hashlib.sha256(blob).digest()
        fmt.IMAGE_ENT.pack_into(buf, pos, arch, r0, fmt.crc32c(blob), off, size, digest)
    struct.pack_into("<I", buf, fmt.HEAD_CRC_AT, fmt.head_crc32c(buf))
    return bytes(buf)
