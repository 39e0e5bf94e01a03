"""Build and use the ``LD_AUDIT`` guard (``audit_guard.c``).

The guard logs every object the system dynamic linker searches for or opens
and aborts the process with exit status 97 if any of them is a ``.cosmoext``
image, which must only ever be mapped by cosmoext's own loader.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

AUDIT_SOURCE = Path(__file__).resolve().with_name("audit_guard.c")
AUDIT_EXIT = 97
AUDIT_MESSAGE = "cx-audit: dynamic linker asked to open "


def build_audit_lib(tmpdir: str | os.PathLike[str]) -> Path:
    """Compile ``audit_guard.c`` into ``<tmpdir>/cx_audit_guard.so``."""
    out = Path(tmpdir) / "cx_audit_guard.so"
    cc = os.environ.get("CC", "gcc")
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-o",
            str(out),
            str(AUDIT_SOURCE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def audit_env(
    lib: Path, log: Path, env: dict[str, str] | None = None
) -> dict[str, str]:
    """``env`` (default: a copy of ``os.environ``) plus the audit variables."""
    out = dict(os.environ if env is None else env)
    out["LD_AUDIT"] = str(lib)
    out["CX_AUDIT_LOG"] = str(log)
    return out


def run_with_audit(
    code: str,
    lib: Path,
    log: Path,
    env: dict[str, str] | None = None,
    *,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``sys.executable -c code`` with ``LD_AUDIT=lib`` and ``CX_AUDIT_LOG=log``."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=audit_env(lib, log, env),
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )


def read_audit_log(log: Path) -> list[tuple[str, str]]:
    """Parse the log into ``(kind, name)`` pairs (kind: ``search``/``open``)."""
    try:
        text = Path(log).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        kind, _, name = line.partition(" ")
        out.append((kind, name))
    return out
