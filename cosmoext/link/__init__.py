"""Link stage: ELF relocatable objects -> one ``format.Image`` per architecture.

``driver`` runs ``ld -r`` and calls ``layout``; ``model`` is the state and
the backend protocol; ``x86_64`` and ``aarch64`` are the backends; ``elf``
reads objects; ``ehframe`` builds ``.eh_frame_hdr``.
"""

from __future__ import annotations

from .driver import link

__all__ = ["link"]
