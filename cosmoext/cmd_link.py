"""``cosmoext link``: link relocatable objects and archives into NAME.cosmoext."""

from __future__ import annotations

import argparse
import os

from . import format as fmt
from . import linker
from .toolchain import host_arch, host_python_abi, host_target


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("link", help="link objects into a .cosmoext", description=__doc__)
    p.add_argument("inputs", nargs="+", metavar="OBJECT_OR_ARCHIVE")
    p.add_argument("--name", required=True, help="module name (PyInit_NAME)")
    p.add_argument("-o", "--output", help="output file (default NAME.cosmoext)")
    p.add_argument("--target", help="cosmo, or a host platform such as linux-gnu")
    p.add_argument("--arch", default=None, help="architecture of the objects (default: host)")
    p.add_argument("--python-abi", help="e.g. cp311 (default: this interpreter's)")
    p.add_argument("--ld", help="binutils ld to merge with (default: ld for the arch)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    img = linker.link(args.inputs, name=args.name, arch=args.arch or host_arch(),
                      target=args.target or host_target(),
                      python_abi=args.python_abi or host_python_abi(), pic=False,
                      ld=args.ld, verbose=args.verbose)
    if not img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_IMAGE | fmt.F_LOW_HOST | fmt.F_STATIC_TLS):
        img.flags |= fmt.F_PIC
    out = args.output or f"{args.name}.cosmoext"
    with open(out + ".tmp", "wb") as f:
        f.write(fmt.pack([img]))
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")
    return 0
