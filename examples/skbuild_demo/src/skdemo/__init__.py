"""skdemo: a C module (_speedups) and a C++ module (_geometry), both .cosmoext images."""

from ._geometry import Polygon, convex_hull_area
from ._speedups import __version__, fnv1a, sum_squares

__all__ = ["Polygon", "convex_hull_area", "fnv1a", "sum_squares", "__version__"]
