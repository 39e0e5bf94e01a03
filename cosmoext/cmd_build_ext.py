"""``cosmoext build-ext``: compile C/C++ sources into NAME.cosmoext."""

from __future__ import annotations

import argparse

from .build_ext import BuildSettings, build
from .toolchain import TOOLCHAINS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-ext", help="compile sources and link a .cosmoext",
                       description=__doc__)
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--name", required=True, help="module name (PyInit_NAME)")
    p.add_argument("-o", "--output", help="output file (default NAME.cosmoext)")
    p.add_argument("--toolchain", choices=TOOLCHAINS, default="gnu")
    p.add_argument("--arch", default="x86_64", help="comma-separated: x86_64,aarch64")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--pic", dest="pic", action="store_true", default=None,
                   help="compile with -fPIC (default for host targets)")
    g.add_argument("--no-pic", dest="pic", action="store_false",
                   help="compile non-PIC, as cosmocc does (default for --target cosmo)")
    p.add_argument("--target", help="cosmo, or a host platform such as linux-gnu")
    p.add_argument("--python-abi", help="e.g. cp311 (default: this interpreter's)")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="MACRO")
    p.add_argument("--cflag", dest="cflags", action="append", default=[], metavar="FLAG",
                   help="extra compiler flag (repeatable)")
    p.add_argument("-v", "--verbose", action="store_true", help="show commands")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = build(BuildSettings(
        name=args.name, sources=args.sources, output=args.output, toolchain=args.toolchain,
        arch=[a for a in args.arch.split(",") if a], pic=args.pic, target=args.target,
        python_abi=args.python_abi, include_dirs=args.include_dirs, defines=args.defines,
        cflags=args.cflags, verbose=args.verbose,
    ))
    print(f"wrote {out}")
    return 0
