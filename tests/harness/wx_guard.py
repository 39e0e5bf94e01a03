"""W^X enforcement for test processes, built on seccomp (via ``pyseccomp``).

``install_wx_filter()`` loads a seccomp filter into the *current* process
that kills it (``SCMP_ACT_KILL_PROCESS`` -> SIGSYS, exit status -31 as seen
by ``subprocess``) as soon as it asks the kernel for memory that is writable
and executable at the same time:

* ``mmap``, ``mprotect``, ``pkey_mprotect``: killed when the ``prot``
  argument (index 2 for all three) has both ``PROT_WRITE`` and ``PROT_EXEC``
  set, tested with a masked-equality comparison
  ``(prot & (W|X)) == (W|X)``.  Every other call is allowed.
* The rules are installed for the native x86_64 ABI *and* for x32.  x32
  system calls enter the kernel with the same ``AUDIT_ARCH_X86_64`` but with
  ``__X32_SYSCALL_BIT`` (0x40000000) set in the syscall number, so a filter
  that only knows x86_64 numbers would let ``mmap|0x40000000`` straight
  through.  Adding ``SCMP_ARCH_X32`` makes libseccomp emit a second branch
  keyed on the x32 numbers.  (Seccomp runs before syscall dispatch, so this
  holds whether or not the kernel was built with x32 support.)
* As defence in depth the i386 ABI (``int $0x80``) is covered as well:
  ``mmap2``/``mprotect``/``pkey_mprotect`` get the same masked rule, and the
  legacy i386 ``mmap`` (nr 90), whose arguments live in a user-space struct
  that seccomp cannot inspect, is killed unconditionally.  Any syscall from
  an architecture not in the filter is killed too (``ACT_BADARCH``).
* ``personality()`` calls that would turn on ``READ_IMPLIES_EXEC`` are
  killed: with that flag the kernel silently adds ``PROT_EXEC`` to readable
  mappings, so a plain RW ``mmap`` would come back RWX without ever showing
  ``PROT_EXEC`` to the filter.  The query form ``personality(0xffffffff)`` is
  still allowed.

``no_new_privs`` is set before the filter is loaded (required for unprivileged
processes, and harmless for root).

What seccomp cannot see (mappings that were already W+X before the filter was
installed, memory made executable through a path other than these calls) is
what :func:`maps_wx_violations` is for: it inspects ``/proc/<pid>/maps``
after the fact.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

# Linux values (mmap.PROT_*).  ctypes and mmap are imported only where used:
# maps_wx_violations() must also work in interpreters that have neither (the
# static interpreters of 'cosmoext embed').
PROT_WRITE = 0x2
PROT_EXEC = 0x4
WX = PROT_WRITE | PROT_EXEC

SIGSYS = 31
#: ``subprocess`` return code of a process killed by the filter.
KILLED_BY_FILTER = -SIGSYS

_PR_SET_NO_NEW_PRIVS = 38
_PER_QUERY = 0xFFFFFFFF
_READ_IMPLIES_EXEC = 0x0400000

_HERE = Path(__file__).resolve()

# Runs in the child: load this very file by path (so the child does not need
# the repository on sys.path), install the filter, then exec the user code in
# the same process.  The user code arrives as argv[1] so no quoting is needed.
_BOOTSTRAP = """\
import importlib.util, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
_spec = importlib.util.spec_from_file_location("_cx_wx_guard", {path!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
_mod.install_wx_filter()
_code = sys.argv.pop(1)
sys.argv[0] = "-c"
del _spec, _mod, importlib, resource
exec(compile(_code, "<wx-guarded>", "exec"), {{"__name__": "__main__"}})
"""


def _libc() -> ctypes.CDLL:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _set_no_new_privs() -> None:
    import ctypes

    libc = _libc()
    libc.prctl.restype = ctypes.c_int
    rc = libc.prctl(
        ctypes.c_int(_PR_SET_NO_NEW_PRIVS),
        ctypes.c_ulong(1),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")


def _current_personality() -> int:
    import ctypes

    libc = _libc()
    libc.personality.restype = ctypes.c_int
    libc.personality.argtypes = [ctypes.c_ulong]
    return libc.personality(_PER_QUERY) & 0xFFFFFFFF


def build_wx_filter():
    """Return the (not yet loaded) ``pyseccomp.SyscallFilter``."""
    import pyseccomp as sc

    def prot_is_wx() -> sc.Arg:
        return sc.Arg(2, sc.MASKED_EQ, WX, WX)

    # x86_64 (native) + x32.  Arches must be added before the rules: a rule
    # is only translated for the arches present when it is added.
    flt = sc.SyscallFilter(sc.ALLOW)
    if not flt.exist_arch(sc.Arch.X86_64):
        raise RuntimeError("wx_guard only supports x86_64 hosts")
    try:
        flt.add_arch(sc.Arch.X32)
    except OSError as exc:  # pragma: no cover - libseccomp without x32
        # Fallback: without an x32 branch, x32 syscall numbers would fall
        # through the x86_64 rules untouched.  We cannot express "every nr
        # >= 0x40000000" with pyseccomp's rule API, so refuse to run rather
        # than pretend the guard is complete.
        raise RuntimeError(f"libseccomp cannot add SCMP_ARCH_X32: {exc}") from exc

    for name in ("mmap", "mprotect", "pkey_mprotect"):
        flt.add_rule(sc.KILL_PROCESS, name, prot_is_wx())

    # personality(): kill when READ_IMPLIES_EXEC is requested, except for
    # the query value 0xffffffff.  libseccomp allows one comparison per
    # argument per rule, so "RIE set and arg != 0xffffffff" is written as a
    # union: for every other bit b, kill if RIE is set and b is clear.  A
    # value with RIE set differs from 0xffffffff iff some other bit is clear.
    for bit in range(32):
        mask = 1 << bit
        if mask == _READ_IMPLIES_EXEC:
            continue
        flt.add_rule(
            sc.KILL_PROCESS,
            "personality",
            sc.Arg(0, sc.MASKED_EQ, _READ_IMPLIES_EXEC | mask, _READ_IMPLIES_EXEC),
        )

    # i386 (int $0x80) in a filter of its own, merged in; keeps i386-only
    # rules (mmap2, legacy mmap) out of the x86_64/x32 branches.
    i386 = sc.SyscallFilter(sc.ALLOW)
    i386.add_arch(sc.Arch.X86)
    i386.remove_arch(sc.Arch.NATIVE)
    for name in ("mmap2", "mprotect", "pkey_mprotect"):
        i386.add_rule(sc.KILL_PROCESS, name, prot_is_wx())
    # old_mmap(struct mmap_arg_struct *): prot is behind a pointer.
    i386.add_rule(sc.KILL_PROCESS, "mmap")
    flt.merge(i386)

    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    flt.set_attr(sc.Attr.CTL_NNP, 1)
    return flt


def wx_filter_pfc() -> str:
    """Human-readable pseudo-code of the filter (for debugging/tests)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as fh:
        build_wx_filter().export_pfc(fh)
        fh.flush()
        fh.seek(0)
        return fh.read()


def install_wx_filter() -> None:
    """Install the W^X seccomp filter in the current process (irreversible).

    Note: a seccomp filter loaded without TSYNC applies to the calling thread
    and to threads/processes created after it; call this before starting
    threads.
    """
    if _current_personality() & _READ_IMPLIES_EXEC:
        raise RuntimeError("process already runs with READ_IMPLIES_EXEC")
    flt = build_wx_filter()
    _set_no_new_privs()
    flt.load()


def run_under_wx_filter(
    code: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that first installs the filter.

    The filter is installed by a bootstrap, then ``code`` is ``exec()``-ed in
    the same process.  A W^X request shows up as ``returncode == -31``.
    """
    bootstrap = _BOOTSTRAP.format(path=str(_HERE))
    return subprocess.run(
        [sys.executable, "-c", bootstrap, code],
        env=env,
        cwd=cwd,
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )


def maps_wx_violations(pid: int | str = "self") -> list[str]:
    """Lines of ``/proc/<pid>/maps`` whose permissions have both w and x."""
    bad = []
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.split(None, 5)
            if len(fields) < 2:
                continue
            perms = fields[1]
            if "w" in perms and "x" in perms:
                bad.append(line.rstrip("\n"))
    return bad


def _main(argv: list[str]) -> int:
    """``python3 -m tests.harness.wx_guard [--] -c CODE | -m MOD | SCRIPT ...``"""
    import runpy

    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(_main.__doc__, file=sys.stderr)
        return 2
    install_wx_filter()
    if argv[0] == "-c" and len(argv) >= 2:
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<wx-guarded>", "exec"), {"__name__": "__main__"})  # noqa: S102
    elif argv[0] == "-m" and len(argv) >= 2:
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
