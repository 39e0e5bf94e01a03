"""The ``cosmoext`` command: one module per subcommand, one error format."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import CosmoextError


def main(argv: list[str] | None = None) -> int:
    from . import build_ext, doctor, embed, inspect, link, wheel

    parser = argparse.ArgumentParser(prog="cosmoext", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cosmoext {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in (build_ext, link, inspect, embed, wheel, doctor):
        mod.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CosmoextError as e:
        msg = str(e)
        first, _, rest = msg.partition("\n")
        print(f"cosmoext: error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `cosmoext inspect --json | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
