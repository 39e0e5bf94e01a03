"""cxdemo: two native extensions shipped as .cosmoext files."""

from ._sorted import unique_sorted
from ._speedups import scale

__all__ = ["scale", "unique_sorted"]
