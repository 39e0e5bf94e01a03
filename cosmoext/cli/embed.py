"""``cosmoext embed``: a static, no-dlopen Python with the .cosmoext loader built in."""

from __future__ import annotations

import argparse

from .. import settings
from ..embed import embed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="link a static interpreter with the loader built in",
                       description=__doc__)
    p.add_argument("-o", "--output", required=True, help="the interpreter to write")
    settings.add_arguments(p, settings.EMBED)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = embed(args.output, settings.from_args(args, settings.EMBED))
    print(f"wrote {out}")
    return 0
