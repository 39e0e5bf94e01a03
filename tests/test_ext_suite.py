"""Behavioural tests for the test extensions in tests/ext.

The tests only use the ``ext`` fixture (``ext(name) -> module``) and
``ext_pkg_dir``; how the modules are built and loaded is up to the conftest:
the project's conftest builds ``.cosmoext`` images, while
``tests/support/ext_so_plugin.py`` builds ordinary ``.so`` modules as a reference::

    python -m pytest --noconftest -p tests.support.ext_so_plugin tests/test_ext_suite.py

The extensions and their sources are listed in ``tests/support/extensions.py``.

Module-level state inside an extension survives between tests (each module
is imported once per session), so tests work with deltas, not absolutes.
"""
from __future__ import annotations

import errno
import gc
import importlib
import importlib.util
import operator
import os
import random
import sys
import threading
import time
import types
import warnings
import weakref
from collections import Counter
from pathlib import Path

import pytest
from support.extensions import CPP, EXTENSIONS

# modules that use multi-phase initialisation (PEP 489)
MULTI_PHASE = {"cx_state", "cx_multiphase", "cx_pkg.sub2"}


def fresh_instance(module):
    """Create and execute a second, independent instance of a multi-phase module."""
    spec = module.__spec__
    new = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(new)
    return new


def run_in_threads(n, target):
    """Run target(i) in n threading.Threads; re-raise the first failure."""
    errors = []

    def wrapper(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "thread did not finish"
    if errors:
        raise errors[0]


# ----------------------------------------------------------------------
# general


@pytest.mark.parametrize("name", sorted(EXTENSIONS))
def test_every_extension_imports(ext, name):
    mod = ext(name)
    assert isinstance(mod, types.ModuleType)
    assert mod.__name__ == name
    assert sys.modules[name] is mod
    assert mod.__spec__ is not None and mod.__spec__.name == name
    assert mod.__doc__ and "test extension" in mod.__doc__
    # importing again yields the same object
    assert ext(name) is mod
    assert importlib.import_module(name) is mod


def test_source_tables_consistent():
    src = Path(__file__).resolve().parent / "ext"
    for name, sources in EXTENSIONS.items():
        assert sources, name
        for s in sources:
            assert (src / s).is_file(), s
        is_cpp = any(s.endswith(".cpp") for s in sources)
        assert is_cpp == (name in CPP), name
    assert set(EXTENSIONS) >= CPP
    assert set(EXTENSIONS) >= MULTI_PHASE


# ----------------------------------------------------------------------
# cx_state: multi-phase init with per-module state


@pytest.fixture
def st(ext):
    return ext("cx_state")


def test_state_exec_slots_ran_in_order(st):
    assert st.exec_log == ["exec_first", "exec_second"]
    assert st.state_size() >= 3 * 8


def test_state_incr_default_and_explicit(st):
    start = st.get()
    assert st.incr() == start + 1
    assert st.incr(5) == start + 6
    assert st.incr(n=-2) == start + 4
    assert st.get() == start + 4
    assert st.incr(0) == start + 4


def test_state_incr_argument_errors(st):
    start = st.get()
    with pytest.raises(TypeError):
        st.incr("x")
    with pytest.raises(TypeError):
        st.incr(1, 2)
    with pytest.raises(TypeError):
        st.incr(m=1)
    assert st.get() == start


def test_state_store_fetch_roundtrip(st):
    marker = object()
    assert st.store(marker) is None
    assert st.fetch() is marker
    assert st.fetch() is marker
    other = ["list"]
    st.store(other)
    assert st.fetch() is other
    st.clear_stored()
    assert st.fetch() is None


def test_state_store_holds_and_releases_reference(st):
    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing)
    base = sys.getrefcount(thing)
    st.store(thing)
    assert sys.getrefcount(thing) == base + 1
    st.store(thing)  # replacing with the same object must not leak
    assert sys.getrefcount(thing) == base + 1
    del thing
    gc.collect()
    assert ref() is not None, "module state must keep the object alive"
    st.store(None)
    gc.collect()
    assert ref() is None, "replaced object must be released"
    assert st.fetch() is None


def test_state_global_counter_distinct_from_module_state(st):
    g = st.global_get()
    c = st.get()
    assert st.global_incr() == g + 1
    assert st.global_incr() == g + 2
    assert st.get() == c
    st.incr(10)
    assert st.global_get() == g + 2
    assert st.get() == c + 10


def test_state_error_class(st):
    err = st.Error
    assert isinstance(err, type)
    assert issubclass(err, Exception)
    assert err.__name__ == "Error"
    assert err.__module__ == "cx_state"
    assert st.error_type() is err
    with pytest.raises(err) as info:
        st.fail("boom")
    assert type(info.value) is err
    assert str(info.value) == "boom"
    with pytest.raises(TypeError):
        st.fail(123)


def test_state_independent_instances(st):
    st.incr(3)
    before = st.get()
    g = st.global_get()
    new = fresh_instance(st)
    assert new is not st
    assert new.__name__ == "cx_state"
    assert new.exec_log == ["exec_first", "exec_second"]
    assert new.get() == 0
    assert new.incr(7) == 7
    assert st.get() == before
    assert st.incr() == before + 1
    assert new.get() == 7
    # separate Error classes, each raised by its own instance
    assert new.Error is not st.Error
    assert new.error_type() is new.Error
    with pytest.raises(new.Error):
        new.fail("x")
    try:
        new.fail("y")
    except st.Error:  # pragma: no cover - would be a bug
        pytest.fail("instance raised the other instance's Error")
    except new.Error:
        pass
    # stored objects are per instance
    a, b = object(), object()
    st.store(a)
    new.store(b)
    assert st.fetch() is a
    assert new.fetch() is b
    st.clear_stored()
    # the static C global is shared by both instances of the same image
    assert new.global_incr() == g + 1
    assert st.global_get() == g + 1
    assert sys.modules["cx_state"] is st


def test_state_instance_freed_releases_state(st):
    # bytes are not GC-tracked, so the collector cannot "rescue" the payload:
    # its reference count only drops if m_clear/m_free really release it.
    payload = bytes(range(256)) * 3
    base = sys.getrefcount(payload)
    new = fresh_instance(st)
    new.store(payload)
    assert sys.getrefcount(payload) == base + 1
    del new
    gc.collect()
    gc.collect()
    assert sys.getrefcount(payload) == base, "module state was not cleared when the module died"
    # the imported instance is unaffected
    assert st.error_type() is st.Error


# ----------------------------------------------------------------------
# cx_tables: static data with pointers to data/functions/Python objects


@pytest.fixture
def tb(ext):
    return ext("cx_tables")


@pytest.mark.parametrize(
    "op,a,b,expected",
    [
        ("add", 7, 5, 12),
        ("sub", 7, 5, 2),
        ("mul", 7, 5, 35),
        ("max", 7, 5, 7),
        ("min", 7, 5, 5),
        ("xor", 6, 3, 5),
        ("first", 7, 5, 7),
        ("add", -100, 58, -42),
        ("mul", -3, 4, -12),
        ("sub", 0, 2**40, -(2**40)),
    ],
)
def test_tables_apply(tb, op, a, b, expected):
    assert tb.apply(op, a, b) == expected


def test_tables_apply_unknown_op(tb):
    with pytest.raises(KeyError, match="unknown op div"):
        tb.apply("div", 1, 2)
    with pytest.raises(TypeError):
        tb.apply("add", "1", 2)


def test_tables_op_names(tb):
    assert tb.op_names() == ["add", "sub", "mul", "max", "min", "xor", "first"]


def test_tables_string_pointer_array(tb):
    assert tb.names() == ["alpha", "beta", "gamma", "delta", "epsilon"]
    assert tb.names_from_middle() == ["gamma", "delta", "epsilon"]
    assert tb.hello_tail() == "world"
    assert tb.self_ref_ok() is True


def test_tables_nested_structs(tb):
    primes = [2, 3, 5, 7, 11, 13]
    squares = [1, 4, 9, 16, 25]
    assert tb.nested_sum() == sum(primes) + sum(squares) + 1000
    assert tb.nested_labels() == [("primes", 6), ("squares", 5), ("single", 1)]
    assert tb.fallback(3, 4) == 3


def test_tables_mutable_function_table(tb):
    tb.set_mutable(0, "add")
    tb.set_mutable(1, "mul")
    tb.set_mutable(2, "sub")
    try:
        assert tb.mutable_names() == ["add", "mul", "sub"]
        assert tb.call_mutable(0, 3, 4) == 7
        assert tb.call_mutable(1, 3, 4) == 12
        assert tb.call_mutable(2, 3, 4) == -1
        tb.swap_ops()
        assert tb.mutable_names() == ["mul", "add", "sub"]
        assert tb.call_mutable(0, 3, 4) == 12
        assert tb.call_mutable(1, 3, 4) == 7
        tb.swap_ops()
        assert tb.call_mutable(0, 3, 4) == 7
        tb.set_mutable(2, "xor")
        assert tb.mutable_names() == ["add", "mul", "xor"]
        assert tb.call_mutable(2, 6, 3) == 5
        with pytest.raises(IndexError):
            tb.call_mutable(3, 1, 1)
        with pytest.raises(IndexError):
            tb.set_mutable(-1, "add")
        with pytest.raises(KeyError):
            tb.set_mutable(0, "nope")
        assert tb.mutable_names() == ["add", "mul", "xor"]
        # the const table is not affected by changes to the mutable one
        assert tb.apply("add", 3, 4) == 7
    finally:
        tb.set_mutable(0, "add")
        tb.set_mutable(1, "mul")
        tb.set_mutable(2, "sub")


def test_tables_python_type_table(tb):
    assert tb.types() == (int, float, str, bytes, list, dict, tuple)
    assert tb.type_index(1) == 0
    assert tb.type_index(2**100) == 0
    assert tb.type_index(1.5) == 1
    assert tb.type_index("s") == 2
    assert tb.type_index(b"b") == 3
    assert tb.type_index([]) == 4
    assert tb.type_index({}) == 5
    assert tb.type_index(()) == 6


def test_tables_type_index_exact_types_only(tb):
    class MyInt(int):
        pass

    assert tb.type_index(True) == -1  # bool is not exactly int
    assert tb.type_index(MyInt(3)) == -1
    assert tb.type_index(None) == -1
    assert tb.type_index(object()) == -1
    assert tb.type_index(set()) == -1


EXC_KINDS = [ValueError, KeyError, TypeError, RuntimeError, ZeroDivisionError, OverflowError]


@pytest.mark.parametrize("i", range(len(EXC_KINDS)))
def test_tables_raise_kind(tb, i):
    with pytest.raises(EXC_KINDS[i]) as info:
        tb.raise_kind(i)
    assert type(info.value) is EXC_KINDS[i]
    assert info.value.args == (f"kind {i}",)


def test_tables_raise_kind_bounds(tb):
    assert tb.n_kinds() == len(EXC_KINDS)
    with pytest.raises(IndexError):
        tb.raise_kind(len(EXC_KINDS))
    with pytest.raises(IndexError):
        tb.raise_kind(-1)


def test_tables_static_none_pointer(tb):
    assert tb.is_none(None) is True
    assert tb.is_none(0) is False
    assert tb.is_none("None") is False


# ----------------------------------------------------------------------
# cx_callback: C -> Python -> C


@pytest.fixture
def cb(ext):
    return ext("cx_callback")


def test_callback_call_args_and_kwargs(cb):
    def f(*args, **kwargs):
        return args, kwargs

    assert cb.call(f) == ((), {})
    assert cb.call(f, 1, "two", [3]) == ((1, "two", [3]), {})
    assert cb.call(f, 1, k=2, z="z") == ((1,), {"k": 2, "z": "z"})
    assert cb.call(len, [1, 2, 3]) == 3
    assert cb.call(cb.depth) == 0
    assert cb.call(max, 3, 9, 4) == 9


def test_callback_call_bad_arguments(cb):
    with pytest.raises(TypeError):
        cb.call()
    with pytest.raises(TypeError, match="not callable"):
        cb.call(5)


def test_callback_map(cb):
    assert cb.map(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]
    assert cb.map(str, range(4)) == ["0", "1", "2", "3"]
    assert cb.map(lambda x: x, []) == []
    assert cb.map(lambda s: s.upper(), (c for c in "abc")) == ["A", "B", "C"]
    seen = []
    cb.map(seen.append, [3, 1, 2])
    assert seen == [3, 1, 2]


def test_callback_reduce(cb):
    assert cb.reduce(operator.add, range(1, 11), 0) == 55
    assert cb.reduce(lambda a, b: a + b, "abc", "") == "abc"
    assert cb.reduce(lambda acc, x: acc + [x * x], [1, 2, 3], []) == [1, 4, 9]
    sentinel = object()
    assert cb.reduce(operator.add, [], sentinel) is sentinel
    # argument order: f(acc, item)
    assert cb.reduce(lambda acc, x: (acc, x), [1, 2], 0) == ((0, 1), 2)


class CallbackBoom(Exception):
    pass


def test_callback_map_exception_propagates(cb):
    boom = CallbackBoom("at 3")
    calls = []

    def f(x):
        calls.append(x)
        if x == 3:
            raise boom
        return x

    cb.reset()
    with pytest.raises(CallbackBoom) as info:
        cb.map(f, [1, 2, 3, 4, 5])
    assert info.value is boom
    assert calls == [1, 2, 3]
    assert cb.n_callbacks() == 3
    # the Python frame of f is in the traceback
    names = [entry.name for entry in info.traceback]
    assert "f" in names


def test_callback_reduce_exception_propagates(cb):
    def f(acc, x):
        if x == "stop":
            raise CallbackBoom(acc)
        return acc + x

    with pytest.raises(CallbackBoom) as info:
        cb.reduce(f, [1, 2, "stop", 4], 0)
    assert info.value.args == (3,)


def test_callback_iterator_exception_propagates(cb):
    def gen():
        yield 1
        raise CallbackBoom("from iterator")

    with pytest.raises(CallbackBoom, match="from iterator"):
        cb.map(lambda x: x, gen())
    with pytest.raises(CallbackBoom, match="from iterator"):
        cb.reduce(operator.add, gen(), 0)


def test_callback_pingpong_depth_50(cb):
    depths = []

    def f(n):
        depths.append(cb.depth())
        if n == 0:
            return [0]
        return cb.pingpong(f, n - 1) + [n]

    cb.reset()
    assert cb.pingpong(f, 50) == list(range(51))
    assert depths == list(range(1, 52))
    assert cb.max_depth() == 51
    assert cb.depth() == 0


def test_callback_pingpong_exception_from_bottom(cb):
    boom = CallbackBoom("bottom")

    def f(n):
        if n == 0:
            raise boom
        return cb.pingpong(f, n - 1)

    with pytest.raises(CallbackBoom) as info:
        cb.pingpong(f, 50)
    assert info.value is boom
    frames = [entry for entry in info.traceback if entry.name == "f"]
    assert len(frames) == 51
    assert cb.depth() == 0


def test_callback_pingpong_exception_caught_midway(cb):
    def f(n):
        if n == 0:
            raise CallbackBoom("deep")
        if n == 25:
            try:
                return cb.pingpong(f, n - 1)
            except CallbackBoom as e:
                assert cb.depth() == 26
                return ("recovered", str(e))
        return cb.pingpong(f, n - 1)

    assert cb.pingpong(f, 50) == ("recovered", "deep")
    assert cb.depth() == 0


def test_callback_infinite_pingpong_raises_recursion_error(cb):
    def f(n):
        return cb.pingpong(f, n + 1)

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        with pytest.raises(RecursionError):
            cb.pingpong(f, 0)
    finally:
        sys.setrecursionlimit(old)
    assert cb.depth() == 0
    assert cb.pingpong(lambda n: n * 2, 21) == 42


def test_callback_call_method(cb):
    items = []
    assert cb.call_method(items, "append", 5) is None
    assert items == [5]
    assert cb.call_method("a,b", "split", ",") == ["a", "b"]
    with pytest.raises(AttributeError):
        cb.call_method(items, "nope")


def test_callback_no_reference_leaks(cb):
    arg = object()
    result = object()
    base_arg = sys.getrefcount(arg)
    base_result = sys.getrefcount(result)

    def f(*a, **k):
        return result

    for _ in range(1000):
        assert cb.call(f, arg, key=arg) is result
        assert cb.map(lambda x: result, [arg, arg]) == [result, result]
        assert cb.reduce(lambda acc, x: result, [arg], arg) is result
        assert cb.pingpong(lambda n: result, 1) is result
    gc.collect()
    assert sys.getrefcount(arg) == base_arg
    assert sys.getrefcount(result) == base_result


# ----------------------------------------------------------------------
# cx_errors: raising exceptions from C


@pytest.fixture
def er(ext):
    return ext("cx_errors")


def test_errors_value_error_format(er):
    with pytest.raises(ValueError) as info:
        er.value_error("width", 7, [1, "x"])
    assert type(info.value) is ValueError
    assert str(info.value) == "bad width: 7 ([1, 'x'])"

    class Custom:
        def __repr__(self):
            return "<custom repr>"

    with pytest.raises(ValueError) as info:
        er.value_error("thing", -3, Custom())
    assert str(info.value) == "bad thing: -3 (<custom repr>)"
    with pytest.raises(ValueError, match=r"^bad \u00e9t\u00e9: 0 \('\u00fc'\)$"):
        er.value_error("\u00e9t\u00e9", 0, "\u00fc")


def test_errors_key_error(er):
    with pytest.raises(KeyError) as info:
        er.key_error("missing")
    assert type(info.value) is KeyError
    assert info.value.args == ("missing",)
    with pytest.raises(KeyError) as info:
        er.key_error((1, 2))
    assert info.value.args == ((1, 2),)


def test_errors_custom_class_hierarchy(er):
    assert issubclass(er.BaseError, Exception)
    assert er.BaseError.__bases__ == (Exception,)
    assert er.SpecificError.__bases__ == (er.BaseError,)
    assert er.LookupFailed.__bases__ == (er.BaseError, LookupError)
    for cls in (er.BaseError, er.SpecificError, er.LookupFailed):
        assert cls.__module__ == "cx_errors"
    assert er.BaseError.__doc__ == "Root of cx_errors exceptions."
    assert not issubclass(er.SpecificError, LookupError)


def test_errors_raise_custom(er):
    with pytest.raises(er.SpecificError) as info:
        er.raise_custom("specific")
    assert type(info.value) is er.SpecificError
    assert str(info.value) == "specific"
    try:
        er.raise_custom("caught by base")
    except er.BaseError as e:
        assert isinstance(e, er.SpecificError)
    else:  # pragma: no cover
        pytest.fail("no exception")


def test_errors_raise_lookup_multiple_bases(er):
    with pytest.raises(LookupError) as info:
        er.raise_lookup("k")
    assert type(info.value) is er.LookupFailed
    assert isinstance(info.value, er.BaseError)
    assert str(info.value) == "no entry for 'k'"
    with pytest.raises(er.BaseError):
        er.raise_lookup(42)


def test_errors_raise_base_with_args(er):
    with pytest.raises(er.BaseError) as info:
        er.raise_base(1, "two", None)
    assert type(info.value) is er.BaseError
    assert info.value.args == (1, "two", None)


def test_errors_raise_with_cause(er):
    with pytest.raises(ValueError) as info:
        er.raise_with_cause("top")
    e = info.value
    assert str(e) == "top"
    assert isinstance(e.__cause__, RuntimeError)
    assert str(e.__cause__) == "root cause"
    assert e.__suppress_context__ is True


def test_errors_wrap_call_sets_cause(er):
    inner = KeyError("inner")

    def failing():
        raise inner

    with pytest.raises(er.SpecificError) as info:
        er.wrap_call(failing)
    assert str(info.value) == "wrapped"
    assert info.value.__cause__ is inner
    tb = inner.__traceback__
    assert tb is not None
    names = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "failing" in names
    assert er.wrap_call(lambda: 5) == 5


def test_errors_wrap_call_passes_base_exceptions(er):
    class NotAnException(BaseException):
        pass

    def f():
        raise NotAnException("through")

    with pytest.raises(NotAnException, match="through"):
        er.wrap_call(f)


def test_errors_null_without_exception_is_system_error(er):
    try:
        er.return_null_no_error()
    except SystemError as e:
        assert "return_null_no_error" in str(e)
    else:
        pytest.fail("returning NULL without an exception must raise SystemError")
    # the interpreter is still healthy afterwards
    assert er.wrap_call(lambda: "ok") == "ok"


def test_errors_value_with_exception_is_system_error(er):
    try:
        er.return_value_with_error()
    except SystemError as e:
        assert "return_value_with_error" in str(e)
        assert isinstance(e.__cause__, ValueError)
        assert str(e.__cause__) == "left set"
    else:
        pytest.fail("returning a value with an exception set must raise SystemError")


@pytest.mark.parametrize(
    "code,cls",
    [
        (errno.ENOENT, FileNotFoundError),
        (errno.EACCES, PermissionError),
        (errno.EEXIST, FileExistsError),
        (errno.EINVAL, OSError),
    ],
)
def test_errors_errno(er, code, cls):
    with pytest.raises(OSError) as info:
        er.raise_errno(code)
    assert type(info.value) is cls
    assert info.value.errno == code
    assert info.value.strerror == os.strerror(code)
    with pytest.raises(cls) as info:
        er.raise_errno(code, "/some/path")
    assert info.value.filename == "/some/path"


def test_errors_warning(er):
    with pytest.warns(UserWarning, match="careful now"):
        er.warn("careful now")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning, match="as error"):
            er.warn("as error")


def test_errors_catch_and_clear(er):
    assert er.catch_and_clear(lambda: 1 // 0) == "ZeroDivisionError"
    assert er.catch_and_clear(lambda: er.raise_custom("x")) == "SpecificError"
    assert er.catch_and_clear(lambda: "fine") == "fine"
    # nothing is left set after clearing
    assert sys.exc_info() == (None, None, None)


# ----------------------------------------------------------------------
# cx_multiphase: Py_mod_create + Py_mod_exec


@pytest.fixture
def mp(ext):
    return ext("cx_multiphase")


def test_multiphase_spec_was_passed(mp):
    assert mp.__name__ == "cx_multiphase"
    assert mp.name() == "cx_multiphase"
    assert mp.__spec__.name == "cx_multiphase"
    assert mp.spec_name() == "cx_multiphase"
    assert mp.created_from_spec_name == "cx_multiphase"
    assert mp.exec_spec_name == "cx_multiphase"


def test_multiphase_exec_ran_on_created_object(mp):
    assert mp.answer == 42
    assert mp.greeting == "hello from exec"
    assert mp.exec_saw_create == 1
    assert mp.create_serial >= 1
    assert mp.exec_serial >= 1
    assert mp.__doc__ == "Py_mod_create + Py_mod_exec (test extension)."


def test_multiphase_functions_bound_to_module(mp):
    assert mp.whoami() is mp
    assert mp.name.__self__ is mp
    assert mp.name.__module__ == "cx_multiphase"
    creates, execs = mp.counts()
    assert creates >= 1 and execs >= 1


def test_multiphase_second_instance(mp):
    creates, execs = mp.counts()
    spec = mp.__spec__
    new = importlib.util.module_from_spec(spec)
    assert mp.counts() == (creates + 1, execs)
    assert new.create_serial == creates + 1
    assert new.created_from_spec_name == "cx_multiphase"
    assert not hasattr(new, "answer")  # exec has not run yet
    spec.loader.exec_module(new)
    assert mp.counts() == (creates + 1, execs + 1)
    assert new.exec_serial == execs + 1
    assert new.answer == 42
    assert new.whoami() is new
    assert new is not mp
    assert mp.whoami() is mp
    assert sys.modules["cx_multiphase"] is mp


# ----------------------------------------------------------------------
# cx_pkg.sub / cx_pkg.sub2: extension modules inside a package


def test_pkg_single_phase_submodule(ext, ext_pkg_dir):
    sub = ext("cx_pkg.sub")
    assert sub.__name__ == "cx_pkg.sub"
    assert sub.where() == "cx_pkg.sub"
    assert sub.KIND == "single-phase"
    assert sub.__spec__.name == "cx_pkg.sub"
    assert sub.__spec__.parent == "cx_pkg"
    assert sub.__package__ == "cx_pkg"
    assert sub.where.__module__ == "cx_pkg.sub"
    assert sys.modules["cx_pkg.sub"] is sub
    assert sys.modules.get("sub") is not sub
    import cx_pkg

    assert cx_pkg.sub is sub
    from cx_pkg import sub as again

    assert again is sub
    assert importlib.import_module(".sub", "cx_pkg") is sub
    pkg_dir = Path(ext_pkg_dir) / "cx_pkg"
    assert (pkg_dir / "__init__.py").is_file()
    assert Path(cx_pkg.__file__).resolve().parent == pkg_dir.resolve()
    origin = sub.__spec__.origin
    assert origin is not None and Path(origin).resolve().parent == pkg_dir.resolve()


def test_pkg_single_phase_state(ext):
    sub = ext("cx_pkg.sub")
    n = sub.calls()
    sub.where()
    sub.where()
    assert sub.calls() == n + 2


def test_pkg_multi_phase_submodule(ext):
    sub2 = ext("cx_pkg.sub2")
    assert sub2.__name__ == "cx_pkg.sub2"
    assert sub2.where() == "cx_pkg.sub2"
    assert sub2.EXEC_NAME == "cx_pkg.sub2"
    assert sub2.KIND == "multi-phase"
    assert sub2.package() == "cx_pkg"
    assert sub2.__spec__.parent == "cx_pkg"
    assert sys.modules["cx_pkg.sub2"] is sub2
    import cx_pkg

    assert cx_pkg.sub2 is sub2
    assert importlib.import_module(".sub2", "cx_pkg") is sub2


def test_pkg_relative_import_from_c(ext):
    sub = ext("cx_pkg.sub")
    sub2 = ext("cx_pkg.sub2")
    assert sub2.sibling("sub") is sub
    assert sub2.sibling("sub2") is sub2
    with pytest.raises(ImportError, match="cannot import name 'does_not_exist'"):
        sub2.sibling("does_not_exist")


def test_pkg_multi_phase_second_instance(ext):
    sub2 = ext("cx_pkg.sub2")
    new = fresh_instance(sub2)
    assert new is not sub2
    assert new.where() == "cx_pkg.sub2"
    assert new.EXEC_NAME == "cx_pkg.sub2"
    assert sys.modules["cx_pkg.sub2"] is sub2


# ----------------------------------------------------------------------
# cx_cpp: C++ runtime


@pytest.fixture
def cpp(ext):
    return ext("cx_cpp")


def test_cpp_static_initialisers(cpp):
    assert cpp.static_init_ok() is True
    assert cpp.greeting() == "hello, cosmoext!"
    assert cpp.registry_get("one") == 1
    assert cpp.registry_get("three") == 3
    with pytest.raises(KeyError):
        cpp.registry_get("four")


def test_cpp_function_local_static(cpp):
    for _ in range(3):
        inits, count, total = cpp.local_static()
        assert inits == 1
        assert count == 25
        assert total == 1060


def test_cpp_sorted_words(cpp):
    text = "the quick brown fox jumps over the lazy dog a zz"
    words = text.split()
    assert cpp.sorted_words(text) == sorted(words, key=lambda w: (len(w), w))
    assert cpp.sorted_words("") == []
    assert cpp.sorted_words("  \t\n ") == []
    assert cpp.sorted_words("b\ta\nc") == ["a", "b", "c"]
    rnd = random.Random(1234)
    many = ["".join(rnd.choice("abcde") for _ in range(rnd.randint(1, 6))) for _ in range(500)]
    assert cpp.sorted_words(" ".join(many)) == sorted(many, key=lambda w: (len(w), w))


def test_cpp_word_counts(cpp):
    text = "to be or not to be that is the question to"
    counts = cpp.word_counts(text)
    assert type(counts) is dict
    assert counts == dict(Counter(text.split()))
    assert list(counts) == sorted(counts)  # std::map order
    assert cpp.word_counts("") == {}
    with pytest.raises(TypeError):
        cpp.word_counts(b"bytes")


def test_cpp_safe_div(cpp):
    assert cpp.safe_div(7, 2) == 3.5
    assert cpp.safe_div(-1, 4) == -0.25
    assert cpp.safe_div(1, 0) is None
    assert cpp.last_error() == "safe_div: division by zero"
    assert cpp.safe_div(0, 0) is None
    assert cpp.safe_div(10, 5) == 2.0


@pytest.mark.parametrize("depth", [0, 1, 2, 5, 50, 500])
def test_cpp_deep_throw(cpp, depth):
    live, made = cpp.live_guards()
    assert cpp.deep_throw(depth) == depth
    live_after, made_after = cpp.live_guards()
    assert live_after == live == 0, "unique_ptr destructors must run during unwinding"
    assert made_after == made + depth + 1


def test_cpp_deep_throw_many_times(cpp):
    for i in range(2000):
        assert cpp.deep_throw(i % 7) == i % 7
    assert cpp.live_guards()[0] == 0
    with pytest.raises(ValueError):
        cpp.deep_throw(-1)


def test_cpp_exception_through_sort_comparator(cpp):
    assert cpp.sort_ints([5, 3, 1, 4], 99) == [1, 3, 4, 5]
    assert cpp.sort_ints([5, 3, 99, 1], 99) is None
    assert cpp.last_error() == "poison value 99"
    rnd = random.Random(99)
    values = [rnd.randint(-1000, 1000) for _ in range(3000)]
    assert cpp.sort_ints(values, 5000) == sorted(values)
    assert cpp.sort_ints(values + [5000], 5000) is None
    assert cpp.sort_ints([], 0) == []
    with pytest.raises(TypeError):
        cpp.sort_ints(["x"], 0)


@pytest.mark.parametrize(
    "kind,expected",
    [
        (0, ("runtime_error:rt", 1)),
        (1, ("DeepError:7", 1)),
        (2, ("int:42", 1)),
        (3, ("string:str", 1)),
        (4, ("logic_error:stored", 1)),
        (5, ("none", 0)),
    ],
)
def test_cpp_catch_all_rethrow(cpp, kind, expected):
    assert cpp.rethrow(kind) == expected
    assert cpp.live_guards()[0] == 0


def test_cpp_escaping_exception_converted(cpp):
    with pytest.raises(RuntimeError, match="C\\+\\+ exception escaped"):
        cpp.escape()
    assert cpp.greeting() == "hello, cosmoext!"


def test_cpp_string_concatenation(cpp):
    assert cpp.join(["a", "b", "c"], "-") == "a-b-c"
    assert cpp.join([], "-") == ""
    assert cpp.join(["solo"], ", ") == "solo"
    assert cpp.join(["\u00e9", "\u4e2d", "\U0001f600"], "+") == "\u00e9+\u4e2d+\U0001f600"
    big = [str(i) for i in range(10000)]
    assert cpp.join(big, ",") == ",".join(big)


# ----------------------------------------------------------------------
# cx_tls: C __thread variables


@pytest.fixture
def tls(ext):
    return ext("cx_tls")


def test_tls_bump_main_thread(tls):
    start = tls.get()
    assert tls.bump() == start + 1
    assert tls.bump(10) == start + 11
    assert tls.bump(0) == start + 11
    assert tls.get() == start + 11
    tls.reset()
    assert tls.get() == 0
    assert tls.bump(3) == 3


def test_tls_initialised_tls_value(tls):
    old = tls.get2()
    tls.set2(100)
    try:
        assert tls.get2() == 100
        seen = {}

        def child():
            seen["get2"] = tls.get2()
            seen["get"] = tls.get()
            tls.set2(-5)
            seen["after"] = tls.get2()

        t = threading.Thread(target=child)
        t.start()
        t.join()
        assert seen == {"get2": 7, "get": 0, "after": -5}
        assert tls.get2() == 100
    finally:
        tls.set2(old)


def test_tls_native_threads(tls):
    tls.bump(5)
    main_count = tls.get()
    main_c2 = tls.get2()
    result = tls.run_threads(8, 100000)
    assert result == [100000] * 8
    assert tls.get() == main_count
    assert tls.get2() == main_c2


def test_tls_native_threads_detail(tls):
    main_addr = tls.addr()
    details = tls.run_threads_detail(8, 1000)
    assert len(details) == 8
    addrs = set()
    for count, c2_start, c2_end, addr in details:
        assert count == 1000
        assert c2_start == 7, "initialised __thread value missing in new thread"
        assert c2_end == 1007
        addrs.add(addr)
    assert len(addrs) == 8, "threads shared a TLS block"
    assert main_addr not in addrs
    assert tls.addr() == main_addr


def test_tls_native_threads_edge_cases(tls):
    assert tls.run_threads(1, 0) == [0]
    assert tls.run_threads(1, 1) == [1]
    assert tls.run_threads(32, 1000) == [1000] * 32
    with pytest.raises(ValueError):
        tls.run_threads(0, 1)
    with pytest.raises(ValueError):
        tls.run_threads(2, -1)


def test_tls_python_threads_each_see_own_counter(tls):
    nthreads = 8
    main_before = tls.get()
    barrier = threading.Barrier(nthreads)
    results = {}
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def body(i):
        iters = 2000 + 500 * i
        assert tls.get() == 0, "new thread must start with a zero counter"
        assert tls.get2() == 7
        addr = tls.addr()
        barrier.wait()
        for k in range(1, iters + 1):
            got = tls.bump(1)
            if got != k:
                raise AssertionError(f"thread {i}: bump returned {got}, expected {k}")
            if k % 200 == 0:
                time.sleep(0)
        extra = tls.bump(i)
        assert extra == iters + i
        barrier.wait()  # keep all threads alive while addresses are compared
        results[i] = (tls.get(), addr)
        barrier.wait()

    try:
        run_in_threads(nthreads, body)
    finally:
        sys.setswitchinterval(old_interval)
    assert sorted(results) == list(range(nthreads))
    for i, (count, _) in results.items():
        assert count == 2000 + 500 * i + i
    assert len({addr for _, addr in results.values()}) == nthreads
    assert tls.get() == main_before


# ----------------------------------------------------------------------
# cx_tls_cpp: C++ thread_local


@pytest.fixture
def tlc(ext):
    return ext("cx_tls_cpp")


def test_tls_cpp_main_thread(tlc):
    size = tlc.size()
    total = tlc.total()
    serial = tlc.serial()
    assert tlc.push(5) == size + 1
    assert tlc.push(6) == size + 2
    assert tlc.total() == total + 11
    assert tlc.serial() == serial  # same Tracker object in this thread
    hits = tlc.hits()
    tlc.push(1)
    assert tlc.hits() == hits + 1
    tlc.clear()
    assert tlc.size() == 0
    assert tlc.total() == 0


def test_tls_cpp_native_threads(tlc):
    tlc.clear()
    tlc.push(123)
    constructed, destroyed = tlc.counts()
    iters = 10000
    result = tlc.run_threads(8, iters)
    assert len(result) == 8
    addrs = set()
    for vec_size, counter, hits, vec_sum, addr, label_ok in result:
        assert vec_size == iters
        assert counter == iters
        assert hits == iters
        assert vec_sum == iters * (iters - 1) // 2
        assert label_ok is True
        addrs.add(addr)
    assert len(addrs) == 8
    # one Tracker constructed per thread, all destroyed by thread exit
    assert tlc.counts() == (constructed + 8, destroyed + 8)
    # the main thread's thread_locals are untouched
    assert tlc.size() == 1
    assert tlc.total() == 123


def test_tls_cpp_native_threads_repeated(tlc):
    constructed, destroyed = tlc.counts()
    for _ in range(3):
        assert [r[0] for r in tlc.run_threads(4, 100)] == [100] * 4
    assert tlc.counts() == (constructed + 12, destroyed + 12)
    with pytest.raises(ValueError):
        tlc.run_threads(0, 1)


def test_tls_cpp_python_threads(tlc):
    nthreads = 8
    constructed, destroyed = tlc.counts()
    main_size = tlc.size()
    barrier = threading.Barrier(nthreads)
    results = {}

    def body(i):
        assert tlc.size() == 0
        barrier.wait()
        values = list(range(i * 1000, i * 1000 + 100 + i))
        for n, v in enumerate(values, 1):
            assert tlc.push(v) == n
            if n % 25 == 0:
                time.sleep(0)
        barrier.wait()
        results[i] = (tlc.size(), tlc.total(), tlc.hits(), tlc.serial())

    run_in_threads(nthreads, body)
    for i in range(nthreads):
        values = list(range(i * 1000, i * 1000 + 100 + i))
        size, total, hits, _ = results[i]
        assert (size, total, hits) == (len(values), sum(values), len(values))
    serials = {r[3] for r in results.values()}
    assert len(serials) == nthreads
    assert all(constructed < s <= constructed + nthreads for s in serials)
    assert tlc.counts()[0] == constructed + nthreads
    # destructors run when the OS threads finish, which may lag join() slightly
    deadline = time.monotonic() + 10
    while tlc.counts()[1] < destroyed + nthreads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tlc.counts() == (constructed + nthreads, destroyed + nthreads)
    assert tlc.size() == main_size


# ----------------------------------------------------------------------
# cx_twin_a / cx_twin_b: same symbol names in two images


def test_twins_keep_their_own_symbols(ext):
    a = ext("cx_twin_a")
    b = ext("cx_twin_b")
    assert a is not b
    assert a.ident() == "a"
    assert b.ident() == "b"
    assert a.value() == 11
    assert b.value() == 22
    assert a.shared() == 1001
    assert b.shared() == 2002


def test_twins_writes_do_not_leak_across_images(ext):
    a = ext("cx_twin_a")
    b = ext("cx_twin_b")
    try:
        a.set_value(111)
        assert a.value() == 111
        assert b.value() == 22
        b.set_value(222)
        assert a.value() == 111
        assert b.value() == 222
        a.set_shared(-1)
        assert b.shared() == 2002
        b.set_shared(-2)
        assert a.shared() == -1
    finally:
        a.set_value(11)
        b.set_value(22)
        a.set_shared(1001)
        b.set_shared(2002)
    assert (a.value(), b.value(), a.shared(), b.shared()) == (11, 22, 1001, 2002)


def test_twins_distinct_addresses(ext):
    a = ext("cx_twin_a")
    b = ext("cx_twin_b")
    addrs_a = a.addrs()
    addrs_b = b.addrs()
    for x, y in zip(addrs_a, addrs_b, strict=False):
        assert x != y
    assert len(set(addrs_a) | set(addrs_b)) == 6


def test_cpp_exception_thrown_in_one_image_caught_in_another(ext):
    """Each image has its own libstdc++; the unwinder is shared, so a throw in
    cx_throw unwinds through CPython's frames into a catch in cx_catch."""
    thrower, catcher = ext("cx_throw"), ext("cx_catch")
    assert catcher.call_and_catch(thrower.throw_int) == "caught int 42"
    assert catcher.call_and_catch(thrower.throw_std) == "caught std: boom from cx_throw"
    assert catcher.call_and_catch(lambda: 7) == 7
    for _ in range(200):  # repeated unwinds reuse the registered frames
        assert catcher.call_and_catch(thrower.throw_std).startswith("caught std")
