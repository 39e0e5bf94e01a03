"""``cosmoext build-ext``: compile C/C++ sources into NAME.cosmoext."""

from __future__ import annotations

import argparse

from .. import settings
from ..pipeline import build_extension


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build-ext", help="compile sources and link a .cosmoext",
                       description=__doc__)
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--name", required=True, help="module name (PyInit_NAME)")
    p.add_argument("-o", "--output", help="output file (default NAME.cosmoext)")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="MACRO")
    p.add_argument("--cflag", dest="cflags", action="append", default=[], metavar="FLAG",
                   help="extra compiler flag (repeatable)")
    settings.add_arguments(p, settings.BUILD)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = build_extension(args.name, args.sources, settings.from_args(args, settings.BUILD),
                          output=args.output, include_dirs=args.include_dirs,
                          defines=args.defines, cflags=args.cflags)
    print(f"wrote {out}")
    return 0
