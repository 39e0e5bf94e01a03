"""The architecture backends of the linker, by name."""

from __future__ import annotations

from ..errors import CosmoextError
from .model import Backend

ARCHES = ("x86_64", "aarch64")


def get_backend(arch: str) -> Backend:
    if arch == "x86_64":
        from .x86_64 import X86_64

        return X86_64()
    if arch == "aarch64":
        from .aarch64 import AArch64

        return AArch64()
    raise CosmoextError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHES)})")
