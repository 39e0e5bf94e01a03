"""cosmoext: native Python extensions as .cosmoext images, loaded without dlopen.

``load(path)`` maps an image and returns its module; importing cosmoext's
``.pth`` hook makes ``import NAME`` find ``NAME.cosmoext`` on ``sys.path``.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load", "get_include", "__version__"]


def get_include() -> str:
    """The directory holding ``cosmoext.h`` (closures for C code in images).

    Pass it to ``cosmoext build-ext -I``; the names it declares are resolved
    from the runtime's export table when an image is loaded.
    """
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "include")


def load(path: str, name: str | None = None):  # -> types.ModuleType
    """Load the .cosmoext file at ``path`` as module ``name`` (default: file stem).

    The module is put in ``sys.modules`` like any import; on failure an
    ImportError names the file and the reason and nothing is left behind.
    """
    from ._hook import load_file

    return load_file(path, name)
