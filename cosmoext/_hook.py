"""Import integration: a path hook whose FileFinder also knows ``.cosmoext``.

Installed at start-up by ``cosmoext.pth`` (host CPython) or by the embedded
interpreter.  Kept import-light: the C runtime is imported only when a
``.cosmoext`` file is actually loaded.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from types import ModuleType

# Not typing.TYPE_CHECKING: this module runs before the import system is
# locked down in embedded interpreters, and typing would reach for _typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.abc import Loader as _LoaderBase
else:
    _LoaderBase = object  # importlib.abc is too heavy to import at start-up

SUFFIX = ".cosmoext"
_installed = False


_runtime_mod = None


def _rt():  # -> cosmoext._runtime, imported on first use and kept
    global _runtime_mod
    if _runtime_mod is None:
        from . import _runtime

        _runtime_mod = _runtime
        # From now on the import system calls the C functions directly: no Python
        # frame between FileFinder's spec and the loader (the per-import hot path).
        CosmoextLoader.create_module = staticmethod(_runtime.create_module)  # type: ignore[method-assign,assignment]
        CosmoextLoader.exec_module = staticmethod(_runtime.exec_module)  # type: ignore[method-assign,assignment]
    return _runtime_mod


class CosmoextLoader(_LoaderBase):
    """Loads ``NAME.cosmoext`` through ``cosmoext._runtime`` (no dlopen).

    An importlib.abc.Loader by protocol; not a subclass, so that installing
    the hook at interpreter start-up imports nothing heavy."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return _rt().create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        _rt().exec_module(module)

    def is_package(self, fullname: str) -> bool:
        return False

    def get_filename(self, fullname: str | None = None) -> str:
        return self.path

    def get_code(self, fullname: str) -> None:
        return None

    def get_source(self, fullname: str) -> None:
        return None


def _refuse_dynamic(spec: object) -> None:
    name = getattr(spec, "name", "?")
    raise ImportError(f"cannot load {getattr(spec, 'origin', name)}: this interpreter has no "
                      f"dynamic loading; build {name} as a .cosmoext", name=name)


def install(allow_dlopen: bool = True) -> None:
    """Put the .cosmoext-aware path hook first (idempotent).

    ``allow_dlopen=False`` (embedded interpreters) also removes extension
    modules from the import system: EXTENSION_SUFFIXES is emptied, FileFinder
    no longer knows them, and ``_imp.create_dynamic`` refuses.
    """
    global _installed
    if _installed:
        return
    from importlib._bootstrap_external import (  # type: ignore[attr-defined]
        _get_supported_file_loaders,
    )

    loaders = _get_supported_file_loaders()
    if not allow_dlopen:
        import _imp

        importlib.machinery.EXTENSION_SUFFIXES.clear()
        setattr(_imp, "create_dynamic", _refuse_dynamic)  # noqa: B010 (typed as Callable)
        loaders = [ld for ld in loaders if ld[0] is not importlib.machinery.ExtensionFileLoader]
        sys.path_hooks[:] = [h for h in sys.path_hooks if "FileFinder" not in repr(h)]
    hook = importlib.machinery.FileFinder.path_hook((CosmoextLoader, [SUFFIX]), *loaders)
    # After zipimport (index 0 by default): zip entries keep their importer.
    pos = 1 if sys.path_hooks and "zipimport" in repr(sys.path_hooks[0]) else 0
    sys.path_hooks.insert(pos, hook)
    sys.path_importer_cache.clear()
    _installed = True


def load_file(path: str, name: str | None = None) -> ModuleType:
    import importlib.util

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
