"""Smoke test of ``benchmarks/run.py``: every offline row yields numbers.

Runs ``run.py --quick --offline`` (the rows that need no PyPI download: the
test extensions, the runtime's own load, the embedded interpreter, strace)
into a temporary file.  Speed goals are not asserted: they live in the
benchmark's report, not in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
OFFLINE = {"1.cx_tables", "1.cx_state", "2.runtime", "6.cx_tables", "7.cx_tables"}


def test_offline_rows_have_numbers(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--offline", "--rounds", "3", "--out", str(out),
         "--json", "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    rows = {r["key"]: r for r in report["rows"]}
    assert set(rows) >= OFFLINE
    for key, row in rows.items():
        if key not in OFFLINE:
            assert row["error"] and row["error"].startswith("not measured: --offline"), row
            continue
        assert row["error"] is None, row
        assert isinstance(row["cosmoext"], float | int) and row["cosmoext"] > 0, row
        if not row["absolute"]:
            assert row["native"] > 0 and math.isfinite(row["ratio"]) and row["ratio"] > 0, row
            assert row["met"] == (row["ratio"] <= row["limit"]), row
    assert rows["2.runtime"]["met"] == (rows["2.runtime"]["cosmoext"] <= 150)
    assert rows["1.cx_tables"]["data"]["n"] == 3
    counts = rows["7.cx_tables"]["data"]["counts"]
    assert counts["native"].get("openat", 0) >= 1 and counts["cosmoext"].get("openat", 0) >= 1
    meta = report["meta"]
    assert meta["wall_s"] > 0 and meta["machine"]["kernel"].startswith("Linux")

    text = out.read_text()
    assert "<!-- run.py: begin -->" in text and "<!-- run.py: end -->" in text
    assert "| measure | cosmoext | native | ratio | goal | met |" in text
    for row in rows.values():
        assert row["measure"] in text
