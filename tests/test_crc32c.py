"""The CRC-32C of the loader (cosmoext/runtime/cxcrc32c.c, hardware and table) and of
cosmoext.format (pure Python) agree with each other and with the standard values."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

import cosmoext.format as fmt
from cosmoext import _runtime

SRC = Path(__file__).resolve().parent.parent / "cosmoext" / "runtime" / "cxcrc32c.c"


def test_check_value() -> None:
    # the CRC-32C catalogue's check value, and RFC 3720 B.4 (32 bytes of zeros / 0xff)
    for f in (_runtime.crc32c, fmt.crc32c_py, lambda d: _runtime.crc32c(d, software=True)):
        assert f(b"123456789") == 0xE3069283
        assert f(bytes(32)) == 0x8A9136AA
        assert f(b"\xff" * 32) == 0x62A8AB43
        assert f(b"") == 0


def test_implementation_is_the_cpus() -> None:
    impl = _runtime.crc32c_impl()
    assert impl in ("sse4.2", "armv8-crc", "table")
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if re.search(r"\bsse4_2\b", cpu):
        assert impl == "sse4.2"


@pytest.mark.parametrize("seed", range(4))
def test_c_hardware_table_and_python_agree(seed: int) -> None:
    """Every length around the three-stream block sizes (3 x 2 KiB, 3 x 16 KiB), odd
    alignments, zero runs (Python's shortcut), and chaining."""
    rng = random.Random(seed)
    lengths = [0, 1, 7, 8, 9, 63, 4095, 4096, 4097, 6143, 6144, 6145, 49151, 49152, 49153,
               rng.randrange(200_000, 300_000)]
    for n in lengths:
        data = rng.randbytes(n + 3)
        if seed % 2:  # padding-like data: zero runs around non-zero bytes
            data = bytes(rng.randrange(0, 9000)) + data + bytes(rng.randrange(0, 9000))
        for off in (0, 1, 3):
            d = data[off:]
            want = fmt.crc32c_py(d)
            assert _runtime.crc32c(d) == want, (n, off)
            assert _runtime.crc32c(d, software=True) == want, (n, off)
            cut = len(d) // 3
            assert _runtime.crc32c(d[cut:], _runtime.crc32c(d[:cut])) == want
            assert fmt.crc32c_py(d[cut:], fmt.crc32c_py(d[:cut])) == want
            assert fmt.crc32c(d) == want


def test_combine_constants() -> None:
    """x^(8n) mod P for the hardware path's block sizes, as written in cxcrc32c.c."""
    text = SRC.read_text()
    consts = dict(re.findall(r"#define (BLK_\w+|X_\w+) (\w+)", text))
    for which in ("LONG", "SHORT"):
        n = int(consts[f"BLK_{which}"])
        assert int(consts[f"X_{which}"].rstrip("uU"), 16) == fmt.crc32c_xpow8n(n), which
