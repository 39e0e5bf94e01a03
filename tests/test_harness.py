"""Tests that prove the harness guards really bite, plus the SHA-256 checks."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "tests" / "harness"
RUNTIME = REPO / "cosmoext" / "runtime"


def _load(name: str):
    """Import a harness module by path (independent of pytest's import mode)."""
    spec = importlib.util.spec_from_file_location(
        f"_cx_harness_{name}", HARNESS / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


wx_guard = _load("wx_guard")
audit = _load("audit")

KILLED = wx_guard.KILLED_BY_FILTER  # -31: SIGSYS
assert KILLED == -31

# ctypes prologue shared by the children below.
_CTYPES_MMAP = textwrap.dedent(
    """
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.restype = ctypes.c_int
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.syscall.restype = ctypes.c_long
    R, W, X = mmap.PROT_READ, mmap.PROT_WRITE, mmap.PROT_EXEC
    MAP_ANON_PRIV = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    MAP_FAILED = ctypes.c_void_p(-1).value

    def rw_page():
        addr = libc.mmap(None, 4096, R | W, MAP_ANON_PRIV, -1, 0)
        assert addr not in (None, MAP_FAILED), ctypes.get_errno()
        return addr
    """
)


def _wx(code: str) -> subprocess.CompletedProcess[str]:
    return wx_guard.run_under_wx_filter(
        _CTYPES_MMAP + textwrap.dedent(code), timeout=60
    )


def _plain(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CTYPES_MMAP + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _explain(res: subprocess.CompletedProcess[str]) -> str:
    return f"rc={res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"


# --------------------------------------------------------------------------
# A. W^X seccomp filter
# --------------------------------------------------------------------------


def test_wx_filter_is_active_in_child():
    res = _wx(
        """
        status = open("/proc/self/status").read()
        print([l for l in status.splitlines() if l.startswith(("Seccomp:", "NoNewPrivs:"))])
        """
    )
    assert res.returncode == 0, _explain(res)
    assert "'Seccomp:\\t2'" in res.stdout
    assert "'NoNewPrivs:\\t1'" in res.stdout


def test_wx_mmap_rwx_kills_child():
    res = _wx(
        """
        m = mmap.mmap(-1, 4096, prot=R | W | X)
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)
    assert "survived" not in res.stdout


def test_wx_mmap_rwx_allowed_without_filter():
    # Control for the test above: the kill comes from the filter.
    res = _plain(
        """
        m = mmap.mmap(-1, 4096, prot=R | W | X)
        print("survived")
        """
    )
    assert res.returncode == 0, _explain(res)
    assert "survived" in res.stdout


def test_wx_mprotect_rwx_kills_child():
    res = _wx(
        """
        addr = rw_page()
        print("mapped", flush=True)
        libc.mprotect(addr, 4096, R | W | X)
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)
    assert "mapped" in res.stdout
    assert "survived" not in res.stdout


def test_wx_mprotect_wx_without_read_kills_child():
    # The mask is W|X only: PROT_READ does not matter.
    res = _wx(
        """
        addr = rw_page()
        libc.mprotect(addr, 4096, W | X)
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)


def test_wx_pkey_mprotect_rwx_kills_child():
    res = _wx(
        """
        addr = rw_page()
        print("mapped", flush=True)
        # pkey_mprotect(addr, len, prot, pkey=-1): x86_64 nr 329
        libc.syscall(ctypes.c_long(329), ctypes.c_void_p(addr), ctypes.c_size_t(4096),
                     ctypes.c_long(R | W | X), ctypes.c_long(-1))
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)
    assert "mapped" in res.stdout


def test_wx_rw_then_rx_works():
    # mmap RW, write machine code, flip to RX and run it.
    res = _wx(
        """
        addr = rw_page()
        code = bytes([0xB8, 0x2A, 0x00, 0x00, 0x00, 0xC3])  # mov eax, 42; ret
        ctypes.memmove(addr, code, len(code))
        assert libc.mprotect(addr, 4096, R | X) == 0, ctypes.get_errno()
        fn = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
        print("result", fn())
        # RX -> RW again is fine too (never both at once).
        assert libc.mprotect(addr, 4096, R | W) == 0
        m = mmap.mmap(-1, 4096, prot=R | W)
        m.write(b"x" * 16)
        """
    )
    assert res.returncode == 0, _explain(res)
    assert "result 42" in res.stdout


def test_wx_x32_mmap_rwx_kills_child():
    # x32 syscall numbers carry __X32_SYSCALL_BIT; without the x32 arch in
    # the filter they would slip past the x86_64 rules.  Seccomp runs before
    # dispatch, so this holds even on kernels built without x32 support.
    x32 = 0x40000000
    res = _wx(
        f"""
        nr = {x32} | 9  # x32 mmap
        rc = libc.syscall(ctypes.c_long(nr), ctypes.c_long(0), ctypes.c_long(4096),
                          ctypes.c_long(R | W), ctypes.c_long(MAP_ANON_PRIV),
                          ctypes.c_long(-1), ctypes.c_long(0))
        print("rw ok", rc, flush=True)
        libc.syscall(ctypes.c_long(nr), ctypes.c_long(0), ctypes.c_long(4096),
                     ctypes.c_long(R | W | X), ctypes.c_long(MAP_ANON_PRIV),
                     ctypes.c_long(-1), ctypes.c_long(0))
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)
    assert "rw ok" in res.stdout
    assert "survived" not in res.stdout


def test_wx_x32_mprotect_rwx_kills_child():
    res = _wx(
        """
        addr = rw_page()
        print("mapped", flush=True)
        libc.syscall(ctypes.c_long(0x40000000 | 10), ctypes.c_void_p(addr),
                     ctypes.c_size_t(4096), ctypes.c_long(R | W | X))
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)
    assert "mapped" in res.stdout


# int $0x80 mmap2(NULL, 4096, PROT, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0); the
# byte at offset 15 is the prot immediate.
_I386_MMAP2 = (
    "53 55 b8 c0 00 00 00 31 db b9 00 10 00 00 ba {prot:02x} 00 00 00"
    " be 22 00 00 00 bf ff ff ff ff 31 ed cd 80 5d 5b c3"
)


def _i386_mmap2_code(prot: int) -> str:
    return f"""
        addr = rw_page()
        code = bytes.fromhex({_I386_MMAP2.format(prot=prot)!r})
        ctypes.memmove(addr, code, len(code))
        assert libc.mprotect(addr, 4096, R | X) == 0
        rc = ctypes.CFUNCTYPE(ctypes.c_uint32)(addr)()
        print("i386 mmap2 ->", hex(rc), flush=True)
        """


def test_wx_i386_mmap2_rwx_kills_child():
    control = _wx(_i386_mmap2_code(3))
    if control.returncode != 0 or "i386 mmap2 ->" not in control.stdout:
        pytest.skip(f"int $0x80 not usable here ({_explain(control)})")
    res = _wx(_i386_mmap2_code(7))
    assert res.returncode == KILLED, _explain(res)
    assert "i386 mmap2" not in res.stdout


def test_wx_personality_read_implies_exec_kills_child():
    query = _wx(
        """
        libc.personality.restype = ctypes.c_int
        print("persona", libc.personality(ctypes.c_ulong(0xFFFFFFFF)))
        """
    )
    assert query.returncode == 0, _explain(query)
    res = _wx(
        """
        libc.personality(ctypes.c_ulong(0x0400000))  # READ_IMPLIES_EXEC
        print("survived")
        """
    )
    assert res.returncode == KILLED, _explain(res)


def test_wx_real_world_rwx_user_is_caught():
    # libffi closures (ctypes callbacks) map RWX pages on some builds.  If
    # they do here, the filter must kill them; if they don't, both must pass.
    code = """
        from pathlib import Path
        import importlib.util
        cb = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)
        print("cb", cb())
        """
    plain = _plain(
        code
        + f"""
        spec = importlib.util.spec_from_file_location("g", {str(HARNESS / "wx_guard.py")!r})
        g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)
        print("rwx", len(g.maps_wx_violations()))
        """
    )
    assert plain.returncode == 0, _explain(plain)
    counts = re.findall(r"^rwx (\d+)$", plain.stdout, re.MULTILINE)
    assert counts, _explain(plain)
    has_rwx = int(counts[0]) > 0
    res = _wx(code)
    if has_rwx:
        assert res.returncode == KILLED, _explain(res)
    else:
        assert res.returncode == 0, _explain(res)


def test_maps_wx_violations_clean_in_normal_process():
    assert wx_guard.maps_wx_violations() == []
    assert wx_guard.maps_wx_violations(os.getpid()) == []
    res = _wx(
        f"""
        spec = __import__("importlib.util").util.spec_from_file_location(
            "g", {str(HARNESS / "wx_guard.py")!r})
        g = __import__("importlib.util").util.module_from_spec(spec)
        spec.loader.exec_module(g)
        print("violations", g.maps_wx_violations())
        """
    )
    assert res.returncode == 0, _explain(res)
    assert "violations []" in res.stdout


def test_maps_wx_violations_detects_rwx_mapping():
    # Without the filter an RWX mapping is possible; the parser must see it.
    res = _plain(
        f"""
        spec = __import__("importlib.util").util.spec_from_file_location(
            "g", {str(HARNESS / "wx_guard.py")!r})
        g = __import__("importlib.util").util.module_from_spec(spec)
        spec.loader.exec_module(g)
        assert g.maps_wx_violations() == [], g.maps_wx_violations()
        addr = libc.mmap(None, 8192, R | W | X, MAP_ANON_PRIV, -1, 0)
        bad = g.maps_wx_violations()
        print("count", len(bad))
        start = int(bad[0].split("-")[0], 16)
        print("match", start <= addr < int(bad[0].split()[0].split("-")[1], 16))
        print("perms", bad[0].split()[1])
        """
    )
    assert res.returncode == 0, _explain(res)
    assert "count 1" in res.stdout
    assert "match True" in res.stdout
    assert "perms rwxp" in res.stdout


def test_wx_guard_module_entry_point():
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.harness.wx_guard",
            "--",
            "-c",
            "import mmap, sys; print(sys.argv[1:]); mmap.mmap(-1, 4096, prot=7)",
            "a",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_no_core,
    )
    assert res.returncode == KILLED, _explain(res)
    assert "['a']" in res.stdout


def _no_core():
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# --------------------------------------------------------------------------
# B. LD_AUDIT guard
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit_lib(tmp_path_factory):
    return audit.build_audit_lib(tmp_path_factory.mktemp("audit"))


def _fresh_interpreter_modules() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def _pick_extension() -> tuple[str, str]:
    """An extension module that is a real .so and not loaded at startup."""
    preloaded = _fresh_interpreter_modules()
    for name in ("_json", "_ctypes", "_csv", "array", "_struct", "_bisect", "math"):
        if name in preloaded:
            continue
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.origin.endswith(".so"):
            return name, spec.origin
    pytest.skip("no shared-object extension module found in this Python")


def test_audit_sees_extension_dlopen(audit_lib, tmp_path):
    name, origin = _pick_extension()
    log = tmp_path / "audit.log"
    res = audit.run_with_audit(
        f"import sys\nassert {name!r} not in sys.modules\nimport {name}\nprint({name}.__file__)",
        audit_lib,
        log,
    )
    assert res.returncode == 0, _explain(res)
    entries = audit.read_audit_log(log)
    assert ("search", origin) in entries, entries
    assert ("open", origin) in entries, entries
    assert not any(".cosmoext" in n for _, n in entries)
    assert "cx-audit" not in res.stderr


def test_audit_kills_on_cosmoext_dlopen(audit_lib, tmp_path):
    _, origin = _pick_extension()
    target = tmp_path / "x.cosmoext"
    log = tmp_path / "audit.log"
    code = textwrap.dedent(
        f"""
        import ctypes, shutil
        shutil.copyfile({origin!r}, {str(target)!r})
        print("copied", flush=True)
        ctypes.CDLL({str(target)!r})
        print("survived")
        """
    )
    res = audit.run_with_audit(code, audit_lib, log)
    assert res.returncode == audit.AUDIT_EXIT == 97, _explain(res)
    assert "copied" in res.stdout
    assert "survived" not in res.stdout
    assert f"{audit.AUDIT_MESSAGE}{target}" in res.stderr
    entries = audit.read_audit_log(log)
    assert ("search", str(target)) in entries
    # Stopped at the search, before the linker mapped anything.
    assert ("open", str(target)) not in entries


def test_audit_kills_on_cosmoext_in_directory_name(audit_lib, tmp_path):
    _, origin = _pick_extension()
    d = tmp_path / "pkg.cosmoext.d"
    d.mkdir()
    target = d / "plain.so"
    shutil.copyfile(origin, target)
    res = audit.run_with_audit(
        f"import ctypes; ctypes.CDLL({str(target)!r})", audit_lib, tmp_path / "log"
    )
    assert res.returncode == 97, _explain(res)
    assert str(target) in res.stderr


# --------------------------------------------------------------------------
# C. Freestanding SHA-256
# --------------------------------------------------------------------------

_SHA_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cxsha256.h"

static unsigned char *read_all(size_t *len)
{
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
    }
    *len = n;
    return buf;
}

static void hex(const uint8_t d[32])
{
    for (int i = 0; i < 32; i++) printf("%02x", d[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    uint8_t d[32];
    size_t len;

    unsigned char *in = read_all(&len);
    if (!in) return 2;

    if (argc > 1 && strcmp(argv[1], "oneshot") == 0) {
        /* Hash from a deliberately misaligned copy. */
        size_t off = argc > 2 ? (size_t)atol(argv[2]) : 0;
        unsigned char *cp = malloc(len + off + 1);
        if (!cp) return 2;
        memcpy(cp + off, in, len);
        cx_sha256(cp + off, len, d);
        hex(d);
        free(cp);
    } else {
        /* Incremental, in awkward chunk sizes. */
        static const size_t chunks[] = {1, 3, 64, 63, 65, 0, 127, 4096, 7};
        struct cx_sha256_ctx ctx;
        size_t pos = 0, i = 0;
        cx_sha256_init(&ctx);
        while (pos < len) {
            size_t c = chunks[i++ % (sizeof chunks / sizeof chunks[0])];
            if (c > len - pos) c = len - pos;
            cx_sha256_update(&ctx, in + pos, c);
            pos += c;
        }
        cx_sha256_final(&ctx, d);
        hex(d);
    }
    free(in);
    return 0;
}
"""


def _compile_sha(tmp: Path, name: str, *flags: str) -> Path:
    src = tmp / "sha_main.c"
    src.write_text(_SHA_MAIN)
    exe = tmp / name
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            *flags,
            f"-I{RUNTIME}",
            "-o",
            str(exe),
            str(src),
            str(RUNTIME / "cxsha256.c"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return exe


def _sha_inputs() -> dict[str, bytes]:
    rnd = os.urandom(3 * 1024 * 1024)
    cases = {"empty": b"", "abc": b"abc"}
    for n in (55, 56, 63, 64, 65, 119, 120, 128):
        cases[f"len{n}"] = bytes((i * 7 + 1) & 0xFF for i in range(n))
    cases["random_3MB"] = rnd
    cases["random_3MB_plus_1"] = rnd[:-1] + b"\x00" + rnd[-1:]
    return cases


def _run_sha(exe: Path, data: bytes, *args: str) -> str:
    res = subprocess.run(
        [str(exe), *args], input=data, capture_output=True, check=True, timeout=120
    )
    return res.stdout.decode().strip()


def test_sha256(tmp_path):
    exe = _compile_sha(tmp_path, "cxsha")
    # Known-answer vectors (FIPS 180-2 examples) independent of hashlib.
    assert _run_sha(exe, b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert _run_sha(exe, b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    for label, data in _sha_inputs().items():
        want = hashlib.sha256(data).hexdigest()
        assert _run_sha(exe, data) == want, f"incremental {label}"
        for off in ("0", "1", "3"):
            assert _run_sha(exe, data, "oneshot", off) == want, (
                f"oneshot {label} +{off}"
            )


def test_sha256_every_length_up_to_300(tmp_path):
    exe = _compile_sha(tmp_path, "cxsha")
    blob = os.urandom(300)
    for n in range(301):
        assert (
            _run_sha(exe, blob[:n], "oneshot", str(n % 4))
            == hashlib.sha256(blob[:n]).hexdigest()
        )


def test_sha256_sanitizers(tmp_path):
    try:
        exe = _compile_sha(
            tmp_path,
            "cxsha_san",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-g",
        )
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"sanitizers unavailable: {exc.stderr[:200]}")
    for label, data in _sha_inputs().items():
        if len(data) > 4096:
            data = data[:100_003]
        want = hashlib.sha256(data).hexdigest()
        assert _run_sha(exe, data) == want, label
        assert _run_sha(exe, data, "oneshot", "1") == want, label


def test_sha256_is_freestanding(tmp_path):
    obj = tmp_path / "cxsha256.o"
    for opt in ("-O2", "-O3", "-Os"):
        subprocess.run(
            [
                "gcc",
                opt,
                "-std=c99",
                "-pedantic",
                "-Wall",
                "-Wextra",
                "-Wconversion",
                "-Werror",
                "-ffreestanding",
                "-c",
                "-o",
                str(obj),
                str(RUNTIME / "cxsha256.c"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        undefined = subprocess.run(
            ["nm", "-u", str(obj)], check=True, capture_output=True, text=True
        ).stdout.split()
        assert undefined == [], f"{opt}: {undefined}"
    includes = [
        line.strip()
        for f in ("cxsha256.c", "cxsha256.h")
        for line in (RUNTIME / f).read_text().splitlines()
        if line.strip().startswith("#include")
    ]
    assert sorted(set(includes)) == [
        '#include "cxsha256.h"',
        "#include <stddef.h>",
        "#include <stdint.h>",
    ]
