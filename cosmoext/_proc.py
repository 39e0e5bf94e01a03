"""The one way cosmoext runs other programs (compilers, ld, pip, probes).

Echo with ``verbose`` (``+ cmd``), one error shape: ``WHAT failed (exit N):
<the tool's first diagnostic line>``, then the command and its whole output
on the following lines (the CLI prints the first line as
``cosmoext: error: ...``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from .errors import CosmoextError, ToolchainError


def run_tool(cmd: list[str], what: str, verbose: bool = False, *, cwd: str | None = None,
             error: type[CosmoextError] = CosmoextError, show_output: bool = False) -> str:
    """Run ``cmd`` and return its standard output; raise ``error`` when it fails.

    With ``verbose`` the command line is echoed first and whatever the tool
    printed is shown even when it succeeds (``show_output`` forces that)."""
    if verbose:
        print("+ " + " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError as e:
        raise ToolchainError(f"{cmd[0]}: not found") from e
    if proc.returncode:
        out = (proc.stdout + proc.stderr).rstrip()
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "")
        raise error(f"{what} failed (exit {proc.returncode})" + (f": {first}" if first else "")
                    + f"\n  command: {' '.join(cmd)}" + (f"\n{out}" if out else ""))
    if verbose or show_output:
        if show_output:
            sys.stdout.write(proc.stdout)
        if proc.stderr:
            print(proc.stderr.rstrip(), file=sys.stderr if show_output else sys.stdout,
                  flush=True)
    return proc.stdout


def probe(cmd: list[str], timeout: float = 30) -> str | None:
    """Output of a probing command (``--version`` ...), or None if it cannot run."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode:
        return None
    return p.stdout.strip() or p.stderr.strip()


def write_atomic(path: str, data: bytes, mode: int | None = None) -> str:
    """Write ``data`` to ``path`` through a temporary file beside it and a
    rename, so a reader never sees a half-written file; returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
