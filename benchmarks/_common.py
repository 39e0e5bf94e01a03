"""Helpers shared by the benchmark scripts: quartiles and paired summaries."""

from __future__ import annotations

import statistics
from typing import Any


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    """p25, median, p75 (inclusive method; one sample gives itself three times)."""
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def summary(per: dict[str, list[float]]) -> dict[str, Any]:
    """Per kind (``cosmoext``, ``native``) the median and IQR; and the paired
    cosmoext/native ratios' median and IQR (samples were taken in pairs)."""
    ratios = [a / b for a, b in zip(per["cosmoext"], per["native"], strict=True) if b]
    r1, r2, r3 = quartiles(ratios) if ratios else (float("nan"),) * 3
    out: dict[str, Any] = {"ratio": r2, "ratio_p25": r1, "ratio_p75": r3, "n": len(ratios)}
    for kind in ("cosmoext", "native"):
        q1, q2, q3 = quartiles(per[kind])
        out[kind] = q2
        out[f"{kind}_p25"] = q1
        out[f"{kind}_p75"] = q3
    return out
