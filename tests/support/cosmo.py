"""The Cosmopolitan lane: the cosmocc toolchain and a Cosmopolitan CPython build.

Found as a user would have them: cosmocc through the ``COSMOCC`` setting or
``PATH``; the CPython build through ``COSMO_PYTHON``, else where
``.ci/setup.sh`` installs it.  Where the workplace provides them
(``../shared/cosmo`` beside the checkout) the lane is required: a missing
piece fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cosmoext.errors import CosmoextError
from cosmoext.toolchain import cosmocc_root

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "cosmo"
REQUIRED = SHARED.is_dir()
SETUP_PYTHON = "/opt/cosmo/python"  # .ci/setup.sh's COSMO_DIR/python


def unavailable(reason: str) -> None:
    """Skip for a user without the toolchain; fail where ../shared/cosmo exists."""
    if REQUIRED:
        pytest.fail(f"{reason} (../shared/cosmo exists: run .ci/setup.sh)", pytrace=False)
    pytest.skip(f"cosmo lane: {reason}")


def toolchain_root() -> Path:
    try:
        return Path(cosmocc_root())
    except CosmoextError as e:
        unavailable(str(e))
        raise


def python_build() -> Path:
    path = Path(os.environ.get("COSMO_PYTHON") or SETUP_PYTHON)
    if not (path / "x86_64" / "lib").is_dir():
        unavailable(f"no Cosmopolitan CPython build at {path} (set COSMO_PYTHON)")
    return path


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 900,
        cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHON* variables: the APE must find its stdlib by itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env
