"""``cosmoext link``: link relocatable objects and archives into NAME.cosmoext."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os

from . import format as fmt
from . import linker
from .errors import CosmoextError
from .toolchain import TOOLCHAINS, get_toolchain, host_arch, host_python_abi, host_target


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("link", help="link objects into a .cosmoext", description=__doc__)
    p.add_argument("inputs", nargs="+", metavar="OBJECT_OR_ARCHIVE")
    p.add_argument("--name", required=True, help="module name (PyInit_NAME)")
    p.add_argument("-o", "--output", help="output file (default NAME.cosmoext)")
    p.add_argument("--target", help="cosmo, or a host platform such as linux-gnu")
    p.add_argument("--arch", default=None, help="architecture of the objects (default: host)")
    p.add_argument("--python-abi", help="e.g. cp311 (default: this interpreter's)")
    p.add_argument("--ld", help="binutils ld to merge with (default: ld for the arch, or the "
                   "--toolchain's)")
    p.add_argument("--toolchain", choices=TOOLCHAINS,
                   help="toolchain that compiled the objects: sets the default --ld, the "
                   "default --target (cosmo for cosmocc) and where --cxx looks")
    p.add_argument("--cxx", action="store_true",
                   help="append the toolchain's static C++ runtime archives (libstdc++.a, "
                   "libgcc.a, ...: Toolchain.runtime_archives()), as build-ext does for C++ "
                   "sources")
    p.add_argument("--cxx-compiler", metavar="CXX",
                   help="with --cxx: the C++ compiler to ask for those archives "
                   "(default: the toolchain's, e.g. g++)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    arch = args.arch or host_arch()
    inputs = list(args.inputs)
    ld, target = args.ld, args.target
    try:
        tc = get_toolchain(args.toolchain or "gnu", arch)
    except CosmoextError:
        if args.toolchain or args.cxx:
            raise
        tc = None  # e.g. an architecture without a gnu toolchain: no runtime archives
    if tc is not None:
        if args.cxx_compiler:
            tc = dataclasses.replace(tc, cxx=args.cxx_compiler)
        if args.toolchain:
            ld = ld or tc.ld
            target = target or ("cosmo" if tc.name == "cosmocc" else None)
        if args.cxx:
            inputs += tc.runtime_archives()
        else:
            # Compiler helpers (__popcountdi2, __divti3, ...) for C objects too,
            # when this machine has the toolchain's libgcc.a; pulled only if used.
            with contextlib.suppress(CosmoextError):
                inputs += tc.runtime_archives(cxx=False)
    img = linker.link(inputs, name=args.name, arch=arch, target=target or host_target(),
                      python_abi=args.python_abi or host_python_abi(), pic=False,
                      ld=ld, verbose=args.verbose)
    if not img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_IMAGE | fmt.F_LOW_HOST | fmt.F_STATIC_TLS):
        img.flags |= fmt.F_PIC
    out = args.output or f"{args.name}.cosmoext"
    with open(out + ".tmp", "wb") as f:
        f.write(fmt.pack([img]))
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")
    return 0
