"""PEP 517 / PEP 660 backend: setuptools' build_meta, with .cosmoext extensions.

Use it from a project's pyproject.toml::

    [build-system]
    requires = ["setuptools>=61", "cosmoext"]
    build-backend = "cosmoext.build"

    [tool.cosmoext]          # optional; -C key=value overrides
    target = "cosmo"         # or the host platform (default)
    arch = ["x86_64"]
    toolchain = "gnu"        # gnu | clang | cosmocc
    pic = true

Every hook delegates to ``setuptools.build_meta`` with setuptools'
build_ext redirected to cosmoext's compiler and linker
(``cosmoext.pep517.setuptools_hooks``); wheels are then re-tagged
(``cosmoext.pep517.wheel_tags``).  Config settings whose keys start with ``-``
(``--build-option`` ...) pass through to setuptools unchanged.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from typing import Any, NoReturn

from ..errors import CosmoextError
from ..settings import Settings
from ..settings import load as load_settings

__all__ = [
    "build_editable", "build_sdist", "build_wheel", "get_requires_for_build_editable",
    "get_requires_for_build_sdist", "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable", "prepare_metadata_for_build_wheel",
]


def _settings(config_settings: dict[str, Any] | None) -> Settings:
    pyproject: dict[str, Any] = {}
    if os.path.exists("pyproject.toml"):
        with open("pyproject.toml", "rb") as f:
            pyproject = tomllib.load(f)
    try:
        return load_settings(pyproject, config_settings)
    except CosmoextError as e:
        _die(e)


def _die(e: Exception) -> NoReturn:
    print(f"cosmoext: error: {e}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def _setuptools_cs(config_settings: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config_settings:
        return None
    return {k: v for k, v in config_settings.items() if k.startswith("-")} or None


def _backend(settings: Settings) -> Any:
    from setuptools import build_meta

    from .setuptools_hooks import activate

    activate(settings)
    return build_meta


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    from setuptools import build_meta

    _settings(config_settings)  # validate early: unknown keys fail here
    return list(build_meta.get_requires_for_build_wheel(_setuptools_cs(config_settings)))


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    from setuptools import build_meta

    return list(build_meta.get_requires_for_build_sdist(_setuptools_cs(config_settings)))


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    from setuptools import build_meta

    _settings(config_settings)
    return list(build_meta.get_requires_for_build_editable(_setuptools_cs(config_settings)))


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: dict[str, Any] | None = None) -> str:
    from .wheel_tags import fix_metadata_dir

    s = _settings(config_settings)
    name = _backend(s).prepare_metadata_for_build_wheel(metadata_directory,
                                                        _setuptools_cs(config_settings))
    return fix_metadata_dir(metadata_directory, name, s.effective_target())


def prepare_metadata_for_build_editable(metadata_directory: str,
                                        config_settings: dict[str, Any] | None = None) -> str:
    from .wheel_tags import fix_metadata_dir

    s = _settings(config_settings)
    name = _backend(s).prepare_metadata_for_build_editable(metadata_directory,
                                                           _setuptools_cs(config_settings))
    return fix_metadata_dir(metadata_directory, name, s.effective_target())


def _build(kind: str, wheel_directory: str, config_settings: dict[str, Any] | None,
           metadata_directory: str | None) -> str:
    from .wheel_tags import retag

    s = _settings(config_settings)
    backend = _backend(s)
    with tempfile.TemporaryDirectory(prefix="cosmoext-wheel-") as tmp:
        try:
            hook = getattr(backend, f"build_{kind}")
            name = hook(tmp, _setuptools_cs(config_settings), None)
            return str(retag(os.path.join(tmp, name), wheel_directory, s.effective_target(),
                             arches_hint=s.arch if kind == "editable" else None))
        except CosmoextError as e:
            _die(e)
    raise AssertionError("unreachable")


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    return _build("wheel", wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    return _build("editable", wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    from setuptools import build_meta

    return str(build_meta.build_sdist(sdist_directory, _setuptools_cs(config_settings)))
