"""CMake package of cosmoext: ``find_package(cosmoext CONFIG)`` finds this directory.

scikit-build-core adds it to ``CMAKE_PREFIX_PATH`` through the ``cmake.prefix``
entry point in cosmoext's pyproject.toml.  For plain CMake,
``python3 -m cosmoext.cmake`` prints it::

    cmake -S . -B build -Dcosmoext_DIR="$(python3 -m cosmoext.cmake)"
"""

from __future__ import annotations

import os

DIR = os.path.dirname(os.path.abspath(__file__))


def get_cmake_dir() -> str:
    """The directory holding cosmoext-config.cmake."""
    return DIR
