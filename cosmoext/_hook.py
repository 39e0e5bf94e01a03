"""Import integration: a path hook whose FileFinder also knows ``.cosmoext``.

Installed at start-up by ``cosmoext.pth`` (host CPython) or by the embedded
interpreter.  Kept import-light: the C runtime is imported only when a
``.cosmoext`` file is actually loaded.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

SUFFIX = ".cosmoext"
_installed = False


class CosmoextLoader(importlib.abc.Loader):
    """Loads ``NAME.cosmoext`` through ``cosmoext._runtime`` (no dlopen)."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        from . import _runtime

        return _runtime.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        from . import _runtime

        _runtime.exec_module(module)

    def is_package(self, fullname: str) -> bool:
        return False

    def get_filename(self, fullname: str | None = None) -> str:
        return self.path

    def get_code(self, fullname: str) -> None:
        return None

    def get_source(self, fullname: str) -> None:
        return None


def _path_hook():  # -> Callable[[str], FileFinder]
    from importlib._bootstrap_external import (  # type: ignore[attr-defined]
        _get_supported_file_loaders,
    )

    return importlib.machinery.FileFinder.path_hook(
        (CosmoextLoader, [SUFFIX]), *_get_supported_file_loaders()
    )


def install() -> None:
    """Put the .cosmoext-aware path hook first (idempotent)."""
    global _installed
    if _installed:
        return
    hook = _path_hook()
    # After zipimport (index 0 by default): zip entries keep their importer.
    pos = 1 if sys.path_hooks and "zipimport" in repr(sys.path_hooks[0]) else 0
    sys.path_hooks.insert(pos, hook)
    sys.path_importer_cache.clear()
    _installed = True


def load_file(path: str, name: str | None = None) -> ModuleType:
    path = os.path.abspath(os.fspath(path))
    if name is None:
        base = os.path.basename(path)
        name = base[: -len(SUFFIX)] if base.endswith(SUFFIX) else base.split(".")[0]
    loader = CosmoextLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
