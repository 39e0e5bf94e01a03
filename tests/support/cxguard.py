"""pytest plugin that proves an upstream test suite ran against ``.cosmoext`` builds.

Load it with ``-p support.cxguard`` (``tests`` on ``PYTHONPATH``) and name the
extension modules in ``CXGUARD_MODULES`` (comma-separated, e.g.
``greenlet._greenlet,greenlet.tests._test_extension``).  Before any test is
collected it checks, for each module:

* ``importlib.util.find_spec`` finds a ``.cosmoext`` file, with cosmoext's
  loader;
* after importing it, the module's ``__file__`` is that file;
* no native build of it (``NAME.so`` or ``NAME.*.so``, e.g.
  ``_greenlet.cpython-311-x86_64-linux-gnu.so``) exists in any ``sys.path``
  entry, so nothing could silently fall back to one.

Stdlib modules brought as ``.cosmoext`` files into an interpreter that lacks
them (``CXGUARD_STDLIB``, e.g. ``resource`` for the embedded interpreter) get
the same checks, except that the stdlib's own ``lib-dynload`` ``.so`` may
exist on disk when the interpreter cannot load extension modules at all
(``importlib.machinery.EXTENSION_SUFFIXES`` is empty).

When the session ends it checks again that the modules in ``sys.modules``
are still the ``.cosmoext`` ones and that no shared object of those names
was ever mapped into the process (``/proc/self/maps``).  It also records
the outcome of every test (not of unittest sub-tests), with the reason for
skips and expected failures, and the top-level modules that some import
looked for and no finder found (in the embedded interpreter: which of the
stdlib C modules it lacks the suite reached for), for ``tests/support/ports.py``.
Any violation stops the run with exit status 4 (usage error) before a test
runs, or fails the session at the end.  ``CXGUARD_EXPECT_PIC=0|1`` also checks how the images were
built (non-PIC is what cosmocc emits).  A summary line per module is printed
in the terminal report and written as JSON to ``CXGUARD_REPORT`` if set.
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pytest itself is imported late: see install_recorder()
    import pytest

_checked: list[dict[str, Any]] = []
_outcomes: dict[str, dict[str, str]] = {}
_not_found: set[str] = set()


class _NotFoundRecorder:
    """Last on sys.meta_path: sees exactly the names no other finder found."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if "." not in name:
            _not_found.add(name)
        return None


def install_recorder() -> None:
    """Record failed imports from now on (``tests/support/ports.py`` calls this before
    pytest starts, so pytest's own imports, e.g. of decimal, are seen too)."""
    if not any(isinstance(f, _NotFoundRecorder) for f in sys.meta_path):
        sys.meta_path.append(_NotFoundRecorder())


def _names(var: str) -> list[str]:
    return [m.strip() for m in os.environ.get(var, "").split(",") if m.strip()]


def _native_files(name: str) -> list[str]:
    rel = os.path.join(*name.split("."))
    found: list[str] = []
    for entry in sys.path:
        base = os.path.join(entry or os.getcwd(), rel)
        for pattern in (base + ".so", base + ".*.so", base + ".pyd", base + ".*.pyd"):
            found += glob.glob(pattern)
    return sorted(set(found))


def _mapped_shared_objects(names: list[str]) -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    except OSError:
        return []
    stems = {n.rsplit(".", 1)[-1] for n in names}
    bad = []
    for p in sorted(paths):
        base = os.path.basename(p)
        if (base.endswith(".so") or ".so." in base) and base.split(".", 1)[0] in stems:
            bad.append(p)
    return bad


def _image_kind(origin: str) -> dict[str, Any]:
    from cosmoext import format as fmt

    with open(origin, "rb") as f:
        images = fmt.parse(f.read())
    return {"pic": all(bool(img.flags & fmt.F_PIC) for img in images),
            "arches": [img.arch_name for img in images],
            "target": images[0].target if images else None}


def _check(name: str, stdlib: bool) -> dict[str, Any]:
    import pytest

    from cosmoext._hook import CosmoextLoader

    try:
        spec = importlib.util.find_spec(name)
    except ImportError as e:  # a parent package failed to import
        raise pytest.UsageError(f"cxguard: cannot look up {name}: {e}") from e
    origin = spec.origin if spec is not None else None
    if spec is None or origin is None or not origin.endswith(".cosmoext"):
        raise pytest.UsageError(f"cxguard: find_spec({name!r}) found {origin!r}, "
                                "not a .cosmoext file")
    if not isinstance(spec.loader, CosmoextLoader):
        raise pytest.UsageError(f"cxguard: {name} would be loaded by {spec.loader!r}, "
                                "not cosmoext's loader")
    native = _native_files(name)
    if stdlib and not importlib.machinery.EXTENSION_SUFFIXES:
        native = []  # on disk, but this interpreter cannot load any extension module
    if native:
        raise pytest.UsageError(f"cxguard: a native build of {name} is on sys.path: "
                                + ", ".join(native))
    try:
        mod = importlib.import_module(name)
    except ImportError as e:
        raise pytest.UsageError(f"cxguard: importing {name} failed: {e}") from e
    if getattr(mod, "__file__", None) != origin:
        raise pytest.UsageError(f"cxguard: {name}.__file__ is {mod.__file__!r}, "
                                f"expected {origin!r}")
    info = {"module": name, "file": origin, "stdlib": stdlib, **_image_kind(origin)}
    expect = os.environ.get("CXGUARD_EXPECT_PIC")
    if expect is not None and info["pic"] != (expect == "1"):
        raise pytest.UsageError(f"cxguard: {origin} is "
                                f"{'PIC' if info['pic'] else 'non-PIC'}, expected "
                                f"{'PIC' if expect == '1' else 'non-PIC'}")
    return info


def pytest_configure(config: pytest.Config) -> None:
    import pytest

    _checked.clear()
    install_recorder()
    ports, stdlib = _names("CXGUARD_MODULES"), _names("CXGUARD_STDLIB")
    if not ports:
        raise pytest.UsageError("cxguard: set CXGUARD_MODULES to the extension modules to check")
    for name in ports:
        _checked.append(_check(name, stdlib=False))
    for name in stdlib:
        _checked.append(_check(name, stdlib=True))
    import cosmoext._runtime as rt

    config._cxguard_runtime = {  # type: ignore[attr-defined]
        "mode": rt.info()["mode"],
        "extension_suffixes": list(importlib.machinery.EXTENSION_SUFFIXES),
    }


def pytest_collection_finish(session: pytest.Session) -> None:
    """CXGUARD_SCALE="module:Class.attr=factor,...": multiply a suite's own wall-clock
    budget (port.toml [emulated]) when it runs under qemu, which is many times slower."""
    for spec in _names("CXGUARD_SCALE"):
        target, _, factor = spec.rpartition("=")
        modname, _, path = target.partition(":")
        owner: Any = importlib.import_module(modname)
        *parents, attr = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        setattr(owner, attr, getattr(owner, attr) * float(factor))


def _record(nodeid: str, outcome: str, why: str = "") -> None:
    prev = _outcomes.get(nodeid)
    if prev is None or prev["outcome"] == "passed":  # errors in teardown win
        _outcomes[nodeid] = {"outcome": outcome, "why": why}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if hasattr(report, "context"):  # a sub-test (pytest's SubtestReport)
        return
    wasxfail = getattr(report, "wasxfail", None)
    if report.when == "call":
        if report.passed:
            _record(report.nodeid, "xpassed" if wasxfail is not None else "passed")
        elif report.skipped:
            if wasxfail is not None:
                _record(report.nodeid, "xfailed", wasxfail)
            else:
                _record(report.nodeid, "skipped", _skip_reason(report))
        else:
            _record(report.nodeid, "failed", str(report.longrepr)[-2000:])
    elif report.when == "setup" and not report.passed:
        if report.skipped:
            _record(report.nodeid, "xfailed" if wasxfail is not None else "skipped",
                    wasxfail if wasxfail is not None else _skip_reason(report))
        else:
            _record(report.nodeid, "error", str(report.longrepr)[-2000:])
    elif report.when == "teardown" and report.failed:
        _outcomes[report.nodeid] = {"outcome": "error", "why": str(report.longrepr)[-2000:]}


def _skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import json

    import pytest

    problems = []
    for info in _checked:
        mod = sys.modules.get(info["module"])
        if mod is None or getattr(mod, "__file__", None) != info["file"]:
            problems.append(f"{info['module']} in sys.modules is "
                            f"{getattr(mod, '__file__', None)!r}, not {info['file']}")
    mapped = _mapped_shared_objects([i["module"] for i in _checked])
    if mapped:
        problems.append("native builds were mapped into the process: " + ", ".join(mapped))
    runtime = getattr(session.config, "_cxguard_runtime", {})
    report = {"modules": _checked, "runtime": runtime, "problems": problems,
              "executable": sys.executable, "exitstatus": int(session.exitstatus),
              "outcomes": _outcomes, "not_found": sorted(_not_found)}
    path = os.environ.get("CXGUARD_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
    if problems:
        session.config._cxguard_problems = problems  # type: ignore[attr-defined]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    runtime = getattr(config, "_cxguard_runtime", {})
    tr = terminalreporter
    tr.write_sep("-", f"cxguard ({runtime.get('mode')} runtime, "
                      f"EXTENSION_SUFFIXES={runtime.get('extension_suffixes')})")
    for info in _checked:
        kind = "PIC" if info["pic"] else "non-PIC"
        tr.write_line(f"cxguard: {info['module']} from {info['file']} "
                      f"({kind}, {'+'.join(info['arches'])}, target {info['target']})")
    for p in getattr(config, "_cxguard_problems", []):
        tr.write_line(f"cxguard: FAILED: {p}", red=True)
