"""Closures from the runtime's trampoline pool (cosmoext/runtime/cxclosure.c).

C code calls every closure here: tests/closures/cx_closures.c (a test
extension, built as a .cosmoext) calls function pointers through their real
C prototypes, uses the C API (cosmoext.h) from inside an image, and runs
pthreads; examples/callbacks is built with the ``cosmoext build-ext`` CLI.
ctypes is never used: its CFUNCTYPE callbacks create RWX pages.

W^X: ``test_closures_under_wx_filter`` re-runs this file in a child under
the seccomp filter that kills any W+X mmap/mprotect, and
``test_maps_audit_every_allocation`` reads /proc/self/maps after every
single allocation.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.build import build_ext
from support.runs import WX_CHILD_SKIP, assert_all_passed, pure_site

import cosmoext
import cosmoext._runtime as rt

HERE = Path(__file__).parent
ROOT = HERE.parent
IN_WX_CHILD = os.environ.get("CX_CLOSURE_WX_CHILD") == "1"


def _load(path: Path):
    return cosmoext.load(str(path))


@pytest.fixture(scope="session")
def closure_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("CX_CLOSURE_BUILD_DIR")
    if prebuilt:
        return Path(prebuilt)
    d = tmp_path_factory.mktemp("cx-closures")
    build_ext(name="cx_closures", sources=[str(HERE / "closures" / "cx_closures.c")],
              output=str(d / "cx_closures.cosmoext"),
              include_dirs=[cosmoext.get_include()], quiet=True)
    # The example, through the CLI exactly as its build.sh does.
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "build-ext", "--name", "callbacks",
                           str(ROOT / "examples" / "callbacks" / "callbacks.c"),
                           "-I", cosmoext.get_include(), "-o", str(d / "callbacks.cosmoext")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return d


@pytest.fixture(scope="session")
def cx(closure_build_dir: Path):
    m = _load(closure_build_dir / "cx_closures.cosmoext")
    assert m.__file__.endswith(".cosmoext")
    return m


@pytest.fixture(scope="session")
def example(closure_build_dir: Path):
    m = _load(closure_build_dir / "callbacks.cosmoext")
    assert m.__file__.endswith(".cosmoext")
    return m


def _maps() -> list[tuple[int, int, str, str]]:
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi, parts[1], parts[5].strip() if len(parts) > 5 else ""))
    return out


def _mapping_of(addr: int) -> tuple[int, int, str, str]:
    for m in _maps():
        if m[0] <= addr < m[1]:
            return m
    raise AssertionError(f"{addr:#x} is not mapped")


def _exec_mappings() -> set[tuple[int, int, str, str]]:
    return {m for m in _maps() if "x" in m[2]}


def _wx() -> list[tuple[int, int, str, str]]:
    return [m for m in _maps() if "w" in m[2] and "x" in m[2]]


# ---- the pool --------------------------------------------------------------


def test_pool_lives_in_the_runtimes_own_text() -> None:
    info = rt.closure_info()
    assert info["capacity"] == 16384 and info["stub_size"] == 16 and info["slot_size"] == 16
    assert info["arch"] == os.uname().machine  # x86_64 natively, aarch64 under qemu
    stubs = _mapping_of(info["stubs"])
    last = _mapping_of(info["stubs"] + info["capacity"] * info["stub_size"] - 1)
    slots = _mapping_of(info["slots"])
    # the stubs: read+execute, not writable, file-backed by the runtime itself
    assert stubs[2].startswith("r-x") and last[2].startswith("r-x"), (stubs, last)
    runtime_file = sys.executable if rt.info()["mode"] == "embedded" else rt.__file__
    assert Path(stubs[3]).resolve() == Path(runtime_file).resolve()
    # the table: read-write, not executable
    assert slots[2].startswith("rw-"), slots
    assert rt.codemem() == "mprotect"
    assert rt.resolve("cosmoext_closure_new") and rt.resolve("cosmoext_closure_free")
    assert rt.resolve("cosmoext_closure_userdata")


def test_closure_address_is_a_stub() -> None:
    info = rt.closure_info()
    with rt.closure(lambda: None, "v()") as c:
        off = c.address - info["stubs"]
        assert 0 <= off < info["capacity"] * 16 and off % 16 == 0
        assert rt.closure_info()["live"] == info["live"] + 1
    assert rt.closure_info()["live"] == info["live"]


# ---- signatures, through real C prototypes ---------------------------------

SIGNATURES = [
    ("i(ii)", lambda a, b: a * b, (6, -7), -42),
    ("i(pp)", lambda a, b: (a > b) - (a < b), (0x1000, 0x2000), -1),
    ("i()", lambda: -7, (), -7),
    ("l(l)", lambda x: x * 3, (2**40,), 3 * 2**40),
    ("d(d)", lambda x: x / 4, (1.0,), 0.25),
    ("f(f)", lambda x: x * 2, (1.25,), 2.5),
    ("B(b)", lambda x: x, (-1,), 255),  # int8 -1 in, uint8 wraps out
    ("h(H)", lambda x: x, (65535,), -1),
    ("I(I)", lambda x: x + 1, (2**32 - 1,), 0),
    ("Q(Q)", lambda x: x, (2**64 - 1,), 2**64 - 1),
    ("z(n)", lambda x: x, (-1,), 2**64 - 1),
    ("p(p)", lambda x: x + 8, (16,), 24),
    ("p(p)", lambda x: None, (16,), 0),
    ("q(qqqqqq)", lambda *a: sum(k * v for k, v in enumerate(a, 1)), (1, 2, 3, 4, 5, 6), 91),
    ("d(dddddddd)", lambda *a: sum(k * v for k, v in enumerate(a, 1)), (0.5,) * 8, 18.0),
    ("d(idlfpd)", lambda a, b, c, d, e, f: a + b + c + d + e + f,
     (1, 0.5, 2**33, 0.25, 4096, 0.125), 1 + 0.5 + 2**33 + 0.25 + 4096 + 0.125),
]


@pytest.mark.parametrize("sig,fn,args,want", SIGNATURES,
                         ids=[f"{s[0]}-{i}" for i, s in enumerate(SIGNATURES)])
def test_signature(cx, sig, fn, args, want) -> None:
    seen = []

    def record(*a):
        seen.append(a)
        return fn(*a)

    with rt.closure(record, sig) as c:
        assert c.signature == sig
        assert cx.call(c.address, sig, *args) == want
    assert seen == [args]


def test_void_results(cx) -> None:
    seen = []
    with rt.closure(seen.append, "v(p)") as c:
        assert cx.call(c.address, "v(p)", 0xDEADBEEF) is None
    with rt.closure(lambda: seen.append("x"), "v()") as c:
        cx.call(c.address, "v()")
    assert seen == [0xDEADBEEF, "x"]


@pytest.mark.parametrize("sig", ["x(ii)", "i(ii", "i(ii)x", "(i)", "i(v)", "i(iiiiiii)",
                                 "d(ddddddddd)", ""])
def test_bad_signatures(sig: str) -> None:
    with pytest.raises(ValueError, match="signature"):
        rt.closure(lambda *a: 0, sig)


def test_not_callable() -> None:
    with pytest.raises(TypeError, match="not callable"):
        rt.closure(42, "i()")


def test_exception_in_callback_is_unraisable(cx) -> None:
    caught = []
    old = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        with rt.closure(lambda a, b: 1 / 0, "i(ii)") as c:
            assert cx.call(c.address, "i(ii)", 1, 2) == 0
        with rt.closure(lambda x: "not a float", "d(d)") as c:
            assert cx.call(c.address, "d(d)", 1.0) == 0.0
    finally:
        sys.unraisablehook = old
    assert [type(u.exc_value) for u in caught] == [ZeroDivisionError, TypeError]


def test_free_and_lifetime() -> None:
    base = rt.closure_info()["live"]
    c = rt.closure(lambda: 1, "i()")
    addr = c.address
    c.free()
    c.free()  # idempotent
    assert c.freed and c.callable is None and "freed" in repr(c)
    with pytest.raises(ValueError, match="freed"):
        _ = c.address
    d = rt.closure(lambda: 2, "i()")
    assert d.address == addr  # the freed stub is reused first
    del d  # dealloc frees
    assert rt.closure_info()["live"] == base


def test_keeps_callable_alive(cx) -> None:
    def make():
        state = {"n": 0}

        def f(x):
            state["n"] += x
            return state["n"]

        return rt.closure(f, "l(l)")

    c = make()
    assert [cx.call(c.address, "l(l)", 5) for _ in range(3)] == [5, 10, 15]
    c.free()


# ---- the C API from inside an image ----------------------------------------


def test_c_api_userdata(cx) -> None:
    addrs = [cx.c_new(k) for k in range(1000)]
    assert len(set(addrs)) == 1000
    assert all(cx.call(a, "i(ii)", 10, 0) == 10 + k for k, a in enumerate(addrs))
    for a in addrs:
        cx.c_free(a)
    cx.c_free(addrs[0])  # double free: ignored


def test_c_api_wraps_python(cx) -> None:
    assert cx.c_wrap_call(lambda x: x * x + 1, 12) == 145


def test_capacity(cx) -> None:
    info = rt.closure_info()
    n, bad = cx.c_fill()
    assert bad == 0 and n == info["capacity"] - info["live"]
    held = []
    try:
        with pytest.raises(MemoryError, match="16384 closures are in use"):
            while True:
                held.append(rt.closure(int, "i()"))
        assert len(held) == n
    finally:
        for c in held:
            c.free()
    assert rt.closure_info()["live"] == info["live"]


def test_qsort_with_python_comparator(cx) -> None:
    items = [(i * 7919) % 1000 - 500 for i in range(1000)]
    calls = []

    def cmp(pa: int, pb: int) -> int:
        a, b = cx.peek_int(pa), cx.peek_int(pb)
        calls.append(1)
        return (a > b) - (a < b)

    with rt.closure(cmp, "i(pp)") as c:
        assert cx.qsort_ints(c.address, items) == sorted(items)
    assert len(calls) > 1000


def test_called_after_free_aborts(closure_build_dir: Path) -> None:
    code = (
        "import cosmoext, cosmoext._runtime as rt, sys\n"
        f"m = cosmoext.load({str(closure_build_dir / 'cx_closures.cosmoext')!r})\n"
        "c = rt.closure(lambda a, b: a + b, 'i(ii)')\n"
        "a = c.address\n"
        "assert m.call(a, 'i(ii)', 1, 2) == 3\n"
        "c.free()\n"
        "m.call(a, 'i(ii)', 1, 2)\n"
        "print('not reached')\n"
    )
    # CX_CLOSURE_PYTHON: how to start this interpreter again (under qemu: through qemu)
    python = shlex.split(os.environ.get("CX_CLOSURE_PYTHON", "")) or [sys.executable]
    proc = subprocess.run([*python, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stderr)
    assert "called after cosmoext_closure_free" in proc.stderr
    assert "not reached" not in proc.stdout


# ---- threads ------------------------------------------------------------------


def test_foreign_threads_call_python(cx) -> None:
    with rt.closure(lambda x: x * 2 + 1, "l(l)") as c:
        sums = cx.call_from_threads(c.address, 8, 2000)
    assert sums == [sum(2 * (t * 1000000 + i) + 1 for i in range(2000)) for t in range(8)]


def test_stress_100k_closures_8_threads_calls_in_flight(cx) -> None:
    """100,000 closures made, called and freed by 8 threads, twice over:

    - C: 8 pthreads x 12,500 through cosmoext_closure_new/free, each keeping
      16 alive, while every thread also calls one shared Python closure;
    - Python: 8 threads x 12,500 rt.closure() objects, each called from C
      and freed, running at the same time as the C churn.
    """
    base = rt.closure_info()["live"]
    shared_calls = []
    with rt.closure(lambda x: (shared_calls.append(1), 2 * x + 1)[1], "l(l)") as shared:
        c_result: list[tuple[int, int]] = []
        c_thread = threading.Thread(
            target=lambda: c_result.append(cx.stress(8, 12500, shared.address, 25)))
        errors: list[BaseException] = []

        def py_worker(t: int) -> None:
            try:
                for i in range(12500):
                    k = t * 100000 + i
                    with rt.closure(lambda x, k=k: x + k, "l(l)") as c:
                        got = cx.call(c.address, "l(l)", 3)
                        if got != 3 + k:
                            raise AssertionError(f"thread {t}: closure {i} returned {got}")
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)

        threads = [threading.Thread(target=py_worker, args=(t,)) for t in range(8)]
        c_thread.start()
        for t in threads:
            t.start()
        for t in [*threads, c_thread]:
            t.join(timeout=600)
            assert not t.is_alive()
    assert not errors, errors[:3]
    assert c_result and c_result[0][0] == 0, c_result
    assert c_result[0][1] == len(shared_calls) == 8 * (12500 // 25)
    info = rt.closure_info()
    assert info["live"] == base and info["peak"] >= 8
    assert _wx() == []


# ---- W^X -------------------------------------------------------------------------


def test_maps_audit_every_allocation(cx) -> None:
    """After every single allocation, Python's and C's: no mapping is writable
    and executable, and no executable mapping appeared at all."""
    before = _exec_mappings()
    assert _wx() == []
    held, c_held = [], []
    for i in range(2048):
        held.append(rt.closure(lambda x, i=i: x + i, "l(l)"))
        assert _wx() == [], i
        assert _exec_mappings() == before, i
        c_held.append(cx.c_new(i))
        assert _wx() == [], i
        assert _exec_mappings() == before, i
    for i in range(0, 2048, 97):
        assert cx.call(held[i].address, "l(l)", 1) == 1 + i
        assert cx.call(c_held[i], "i(ii)", 1, 0) == 1 + i
    for c in held:
        c.free()
    for a in c_held:
        cx.c_free(a)
    assert _exec_mappings() == before and _wx() == []


@pytest.mark.skipif(IN_WX_CHILD, reason=WX_CHILD_SKIP)
def test_closures_under_wx_filter(closure_build_dir: Path) -> None:
    """This whole file again, in a child under the seccomp filter that kills
    the process on any mmap/mprotect asking for write+execute."""
    from harness.wx_guard import KILLED_BY_FILTER, run_under_wx_filter

    env = dict(os.environ, CX_CLOSURE_BUILD_DIR=str(closure_build_dir), CX_CLOSURE_WX_CHILD="1",
               PYTHONPATH=str(HERE))
    code = ("import sys, pytest\n"
            f"sys.exit(pytest.main(['-q', '-rs', '-x', '-p', 'no:cacheprovider', {__file__!r}]))\n")
    proc = run_under_wx_filter(code, env=env, timeout=900)
    assert proc.returncode != KILLED_BY_FILTER, "a W+X mapping was requested"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout, __file__, skip_reason=WX_CHILD_SKIP)


@pytest.mark.skipif(IN_WX_CHILD, reason=WX_CHILD_SKIP)
def test_closures_in_embedded_interpreter_under_wx_filter(tmp_path: Path) -> None:
    """This file again in a `cosmoext embed` interpreter (static, no dlopen,
    the runtime and its stub block linked into the executable), from non-PIC
    images (cosmocc's shape), under the seccomp W^X filter: the interpreter
    is exec()ed by a filtered process and inherits the filter."""
    from harness.wx_guard import KILLED_BY_FILTER, run_under_wx_filter

    python = tmp_path / "python-cx"
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "embed", "-o", str(python)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    images = tmp_path / "nopic"
    build_ext(name="cx_closures", sources=[str(HERE / "closures" / "cx_closures.c")],
              output=str(images / "cx_closures.cosmoext"), pic=False,
              include_dirs=[cosmoext.get_include()], quiet=True)
    build_ext(name="callbacks", sources=[str(ROOT / "examples" / "callbacks" / "callbacks.c")],
              output=str(images / "callbacks.cosmoext"), pic=False,
              include_dirs=[cosmoext.get_include()], quiet=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=os.pathsep.join([str(pure_site(tmp_path / "site")), str(HERE)]),
               CX_CLOSURE_BUILD_DIR=str(images), CX_CLOSURE_WX_CHILD="1")
    code = ("import subprocess, sys\n"
            f"p = subprocess.run([{str(python)!r}, '-m', 'pytest', '-q', '-rs', '-x', '-p', "
            f"'no:cacheprovider', {__file__!r}], env={env!r}, capture_output=True, text=True)\n"
            "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); sys.exit(p.returncode)\n")
    proc = run_under_wx_filter(code, timeout=900)
    assert proc.returncode != KILLED_BY_FILTER, "a W+X mapping was requested"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout, __file__, skip_reason=WX_CHILD_SKIP)


# ---- the example ------------------------------------------------------------------


def test_example_sort(example) -> None:
    words = ["pear", "Fig", "apple", "kiwi", "Banana"]
    assert example.sort(words, lambda a, b: (a.lower() > b.lower()) - (a.lower() < b.lower())) \
        == sorted(words, key=str.lower)
    nums = [(i * 37) % 101 for i in range(101)]
    assert example.sort(nums, lambda a, b: b - a) == sorted(nums, reverse=True)
    with pytest.raises(ZeroDivisionError):
        example.sort([3, 1, 2], lambda a, b: 1 // 0)


def test_example_sort_ints_with_runtime_closure(example) -> None:
    def by_last_digit(pa: int, pb: int) -> int:
        a, b = example.peek_int(pa), example.peek_int(pb)
        return (a % 10 - b % 10) or (a - b)

    with rt.closure(by_last_digit, "i(pp)") as cmp:
        assert example.sort_ints([31, 12, 5, 44, 20, 13], cmp.address) == \
            [20, 31, 12, 13, 44, 5]


def test_example_event_loop(example) -> None:
    fired: dict[int, list[int]] = {}
    timers = [((lambda tick, i=i: fired.setdefault(i, []).append(tick)), 1 + i % 7)
              for i in range(500)]
    live = rt.closure_info()["live"]
    n = example.run_loop(timers, 100)
    assert n == sum(100 // (1 + i % 7) for i in range(500)) == sum(map(len, fired.values()))
    assert fired[6] == list(range(7, 101, 7))
    assert rt.closure_info()["live"] == live  # the loop's 500 closures were freed

    def boom(tick: int) -> None:
        if tick == 3:
            raise RuntimeError("tick 3")

    with pytest.raises(RuntimeError, match="tick 3"):
        example.run_loop([(boom, 1)], 10)


def test_example_event_loop_with_runtime_closures(example) -> None:
    seen: list[tuple[int, int]] = []
    closures = [rt.closure(lambda tick, i=i: seen.append((i, tick)), "v(l)") for i in range(64)]
    try:
        assert example.run_loop_addresses([(c.address, 1 + c_i % 4)
                                           for c_i, c in enumerate(closures)], 12) == \
            sum(12 // (1 + i % 4) for i in range(64))
    finally:
        for c in closures:
            c.free()
    assert (5, 12) in seen and len(seen) == sum(12 // (1 + i % 4) for i in range(64))


def test_example_benchmark_helpers(example) -> None:
    with rt.closure(lambda a, b: a + b, "i(ii)") as c:
        assert example.call_ii_many(c.address, 1000) == sum(i + 1 for i in range(1000))
    live = rt.closure_info()["live"]
    example.new_free_many(100000)
    assert rt.closure_info()["live"] == live
