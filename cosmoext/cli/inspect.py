"""``cosmoext inspect``: verdict first, then what each image holds (``--json`` twin)."""

from __future__ import annotations

import argparse
import json

from ..describe import describe, format_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show what a .cosmoext holds", description=__doc__)
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    d = describe(args.file)
    print(json.dumps(d, indent=2) if args.json else format_text(d))
    return 0 if d["valid"] else 1
