"""Running build tools: one place for echoing (-v) and for the error shape."""

from __future__ import annotations

import subprocess

from .errors import CosmoextError, ToolchainError


def run_tool(cmd: list[str], what: str, verbose: bool = False) -> str:
    """Run ``cmd``; on failure raise a CosmoextError naming it, with its output.

    With ``verbose`` the command line is echoed first (``+ cmd``) and any
    diagnostics it printed are shown even when it succeeds."""
    if verbose:
        print("+ " + " ".join(cmd), flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise ToolchainError(f"{cmd[0]}: not found") from e
    if proc.returncode:
        raise CosmoextError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                            + (proc.stdout + proc.stderr).rstrip())
    if verbose and proc.stderr:
        print(proc.stderr.rstrip(), flush=True)
    return proc.stdout
