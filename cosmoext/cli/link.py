"""``cosmoext link``: link relocatable objects and archives into NAME.cosmoext."""

from __future__ import annotations

import argparse

from .. import settings
from ..pipeline import link_objects


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("link", help="link objects into a .cosmoext", description=__doc__)
    p.add_argument("inputs", nargs="+", metavar="OBJECT_OR_ARCHIVE")
    p.add_argument("--name", required=True, help="module name (PyInit_NAME)")
    p.add_argument("-o", "--output", help="output file (default NAME.cosmoext)")
    p.add_argument("--ld", help="binutils ld to merge with (default: the toolchain's for the "
                   "architecture)")
    p.add_argument("--cxx", action="store_true",
                   help="append the toolchain's static C++ runtime archives (libstdc++.a, "
                   "libgcc.a), as build-ext does for C++ sources")
    p.add_argument("--cxx-compiler", metavar="CXX",
                   help="with --cxx: the C++ compiler to ask for those archives "
                   "(default: the toolchain's, e.g. g++)")
    settings.add_arguments(p, settings.BUILD)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = link_objects(args.inputs, args.name, settings.from_args(args, settings.BUILD),
                       output=args.output, ld=args.ld, cxx=args.cxx,
                       cxx_compiler=args.cxx_compiler)
    print(f"wrote {out}")
    return 0
