"""``cosmoext wheel``: port an unmodified sdist by building it through its own
setuptools backend with cosmoext's compiler and linker substituted for build_ext.

SPEC is a requirement (``ujson==6.1.0``, fetched with ``pip download``), an
sdist file, or a source directory.  The project's declared build
requirements are installed into a throw-away virtual environment that also
sees this interpreter's packages (so cosmoext itself is importable there);
its backend then runs in that environment with ``cosmoext.pep517.setuptools_hooks``
active, and the resulting wheel is re-tagged.  No per-project code.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

from ._proc import run_tool
from .errors import CosmoextError
from .settings import Settings, to_dict

DEFAULT_REQUIRES = ["setuptools>=40.8.0", "wheel"]
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"

# Runs inside the build environment: activate the substitution, then call
# the project's own backend exactly as a PEP 517 frontend would.
_RUNNER = r"""
import importlib, json, os, sys
src, out, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
os.chdir(src)
for p in reversed(cfg["backend_path"]):
    sys.path.insert(0, os.path.join(src, p))
from cosmoext.settings import Settings
from cosmoext.pep517.setuptools_hooks import activate
activate(Settings(**cfg["settings"]))
mod, _, obj = cfg["backend"].partition(":")
backend = importlib.import_module(mod)
for part in filter(None, obj.split(".")):
    backend = getattr(backend, part)
print("WHEEL=" + backend.build_wheel(out, cfg["config_settings"] or None))
"""


def _run(cmd: list[str], what: str, verbose: bool, cwd: str | None = None) -> str:
    return run_tool(cmd, what, verbose, cwd=cwd, show_output=verbose)


def fetch(spec: str, dest: str, verbose: bool) -> str:
    """Return a source directory for SPEC (a directory, an sdist, or a requirement)."""
    if os.path.isdir(spec):
        return os.path.abspath(spec)
    if os.path.isfile(spec):
        sdist = spec
    else:
        print(f"fetching sdist for {spec}", flush=True)
        dl = os.path.join(dest, "download")
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
              "--disable-pip-version-check", "-d", dl, spec], f"pip download {spec}", verbose)
        found = os.listdir(dl)
        if len(found) != 1:
            raise CosmoextError(f"pip download {spec}: expected one sdist, got {found}")
        sdist = os.path.join(dl, found[0])
    src = os.path.join(dest, "src")
    if sdist.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(sdist) as t:
            t.extractall(src, filter="data")
    elif sdist.endswith(".zip"):
        with zipfile.ZipFile(sdist) as z:
            z.extractall(src)
    else:
        raise CosmoextError(f"{sdist}: not an sdist (.tar.gz or .zip)")
    entries = os.listdir(src)
    return os.path.join(src, entries[0]) if len(entries) == 1 else src


def build_system(src: str) -> tuple[list[str], str, list[str]]:
    path = Path(src, "pyproject.toml")
    if not path.exists():
        return DEFAULT_REQUIRES, DEFAULT_BACKEND, []
    data = tomllib.loads(path.read_text())
    bs = data.get("build-system") or {}
    if "build-backend" not in bs:
        return list(bs.get("requires", DEFAULT_REQUIRES)), DEFAULT_BACKEND, []
    return list(bs.get("requires", [])), bs["build-backend"], list(bs.get("backend-path", []))


def port(spec: str, wheel_dir: str, settings: Settings,
         config_settings: dict[str, str] | None = None) -> str:
    """Build SPEC into a .cosmoext wheel in wheel_dir; returns its path."""
    from .pep517.wheel_tags import retag

    os.makedirs(wheel_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cosmoext-port-") as tmp:
        src = fetch(spec, tmp, settings.verbose)
        requires, backend, backend_path = build_system(src)
        if not backend.startswith("setuptools"):
            print(f"note: backend {backend} is not setuptools; building with it anyway and "
                  "substituting setuptools' build_ext where it is used", flush=True)
        env_dir = os.path.join(tmp, "env")
        print(f"build environment: {', '.join(requires) or '(no requirements)'}", flush=True)
        _run([sys.executable, "-m", "venv", "--system-site-packages", env_dir],
             "creating the build environment", settings.verbose)
        py = os.path.join(env_dir, "bin", "python")
        if requires:
            _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *requires],
                 "installing build requirements", settings.verbose)
        raw = os.path.join(tmp, "raw")
        os.makedirs(raw)
        cfg = {"backend": backend, "backend_path": backend_path,
               "settings": to_dict(settings), "config_settings": config_settings or {}}
        print(f"building {os.path.basename(src)} with {backend}", flush=True)
        out = _run([py, "-c", _RUNNER, src, raw, json.dumps(cfg)], f"building {spec}",
                   settings.verbose, cwd=src)
        line = [ln for ln in out.splitlines() if ln.startswith("WHEEL=")]
        if not line:
            raise CosmoextError(f"building {spec}: the backend reported no wheel")
        built = os.path.join(raw, line[-1].removeprefix("WHEEL="))
        name = retag(built, wheel_dir, settings.effective_target())
        shutil.rmtree(raw, ignore_errors=True)
    return os.path.join(wheel_dir, name)
