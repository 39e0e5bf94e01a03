"""``cosmoext doctor``: which build routes work on this machine, and what is missing.

Verdict first (is the default route, gnu for this machine's architecture and
this CPython, usable?), then every route, then what was found with versions,
then each missing piece with the command that installs it.  ``--json`` prints
the same as one object.  Exit status 0 when the default route works, 1 when
it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..doctor import diagnose, format_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check toolchains, libraries and headers",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rep = diagnose()
    try:
        print(json.dumps(rep, indent=2) if args.json else format_text(rep), flush=True)
    except BrokenPipeError:  # e.g. | head: not an error of the verdict
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if rep["ok"] else 1
