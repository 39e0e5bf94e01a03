"""Running pytest in other interpreters (child processes, the embedded
interpreter, the arm64 ones under qemu): the site they need and the counts
they report, compared with what this interpreter collects."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
EXT_SUITE = TESTS / "test_ext_suite.py"

# Why test_closures.py skips a test in the children it starts (they only run there).
WX_CHILD_SKIP = "this is the W^X child"

# pytest and its pure-Python dependencies
PURE_SITE_MODULES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py", "pygments")

_OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|"
                      r"warnings?)\b")


def pure_site(dest: Path) -> Path:
    """A directory of symlinks to pytest and its pure-Python dependencies (those
    installed here), for interpreters that have no site-packages of their own."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PURE_SITE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        src = Path(spec.origin)
        src = src.parent if spec.submodule_search_locations else src
        (dest / src.name).symlink_to(src)
    return dest


def outcomes(stdout: str) -> dict[str, int]:
    """The counts of pytest's closing summary line (``{"passed": 120, ...}``;
    ``error``/``warning`` singular); empty when there is none."""
    for line in reversed(stdout.splitlines()):
        found = _OUTCOME.findall(line)
        if found and re.search(r" in [0-9.]+s", line):
            counts: dict[str, int] = {}
            for n, word in found:
                key = word.rstrip("s") if word.startswith(("error", "warning")) else word
                counts[key] = counts.get(key, 0) + int(n)
            counts.pop("warning", None)
            return counts
    return {}


def passed(stdout: str) -> int:
    return outcomes(stdout).get("passed", 0)


@functools.cache
def collected(path: str | Path = EXT_SUITE, *args: str) -> int:
    """How many tests pytest collects from ``path`` in this interpreter (a child
    run of the same file must report exactly this many outcomes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args, str(path)],
                          capture_output=True, text=True, timeout=300, cwd=str(TESTS),
                          env=env)
    m = re.search(r"^(\d+)(?:/\d+)? tests? collected", proc.stdout, re.M)  # "28/123": -k
    assert proc.returncode == 0 and m, proc.stdout[-2000:] + proc.stderr[-2000:]
    return int(m.group(1))


def assert_all_passed(stdout: str, path: str | Path = EXT_SUITE,
                      skip_reason: str | None = None, select: tuple[str, ...] = ()) -> int:
    """A child run of ``path`` (with pytest arguments ``select``, e.g. ``-k cpp``)
    passed every test this interpreter collects from it with them, except those
    skipped there for ``skip_reason`` (counted from the ``-rs`` report), and
    deselected the rest; return the number passed."""
    skipped = 0
    if skip_reason:
        skipped = sum(int(n) for n in re.findall(
            rf"^SKIPPED \[(\d+)\] .*: {re.escape(skip_reason)}$", stdout, re.M))
    want = {"passed": collected(path, *select) - skipped}
    if skipped:
        want["skipped"] = skipped
    if collected(path) > collected(path, *select):
        want["deselected"] = collected(path) - collected(path, *select)
    got = outcomes(stdout)
    assert got == want, f"{got} != {want}\n{stdout[-2000:]}"
    return want["passed"]
