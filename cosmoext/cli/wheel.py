"""``cosmoext wheel``: port an unmodified sdist (or requirement, or source tree)
to a wheel whose extension modules are .cosmoext files."""

from __future__ import annotations

import argparse

from .. import settings
from ..errors import CosmoextError
from ..sdist import port


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wheel", help="build a .cosmoext wheel from an sdist or requirement",
                       description=__doc__)
    p.add_argument("spec", metavar="SPEC",
                   help="a requirement (ujson==6.1.0), an sdist file, or a source directory")
    p.add_argument("-w", "--wheel-dir", default=".", help="where to write the wheel (default .)")
    p.add_argument("-C", "--config-setting", dest="config", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="a cosmoext setting (see the README's settings table), or a "
                   "setuptools option when KEY starts with -")
    p.add_argument("-v", "--verbose", action="store_true", help="show commands and output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    cfg: dict[str, str] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            raise CosmoextError(f"-C {item}: expected KEY=VALUE")
        cfg[key] = value
    s = settings.load(None, cfg)
    s.verbose = s.verbose or args.verbose
    passthrough = {k: v for k, v in cfg.items() if k.startswith("-")}
    print(f"wrote {port(args.spec, args.wheel_dir, s, passthrough)}")
    return 0
