"""Command line: ``python -m concurrency_kit demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m concurrency_kit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="re-run the seed chapter's experiments under every mode")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo  # noqa: PLC0415 - only this command needs it

        run_demo(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
