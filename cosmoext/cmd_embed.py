"""``cosmoext embed``: a static, no-dlopen Python with the .cosmoext loader built in."""

from __future__ import annotations

import argparse

from .embed import EmbedSettings, embed
from .toolchain import TOOLCHAINS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="link a static interpreter with the loader built in",
                       description=__doc__)
    p.add_argument("-o", "--output", required=True, help="the interpreter to write")
    p.add_argument("--libpython", help="libpythonX.Y.a (default: Debian's for this arch)")
    p.add_argument("--python-include",
                   help="headers of that build (default /usr/include/pythonX.Y)")
    p.add_argument("--config-c", help="builtin-module table (default: config.c beside libpython)")
    p.add_argument("--toolchain", choices=TOOLCHAINS, default="gnu")
    p.add_argument("--cc", help="C compiler (default: the toolchain's)")
    p.add_argument("--arch", help="x86_64 or aarch64 (default: this machine)")
    p.add_argument("--stdlib", help="directory or zip holding the standard library "
                                    "(default: the build's own prefix)")
    p.add_argument("--tls-reserve", type=int, default=64 * 1024,
                   help="static TLS reserve for non-PIC images, bytes (default 65536)")
    p.add_argument("-v", "--verbose", action="store_true", help="show commands")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = embed(EmbedSettings(
        output=args.output, libpython=args.libpython, python_include=args.python_include,
        config_c=args.config_c, toolchain=args.toolchain, cc=args.cc, arch=args.arch,
        stdlib=args.stdlib, tls_reserve=args.tls_reserve, verbose=args.verbose))
    print(f"wrote {out}")
    return 0
