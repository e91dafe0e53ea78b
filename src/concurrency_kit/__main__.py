"""Command line: ``python -m concurrency_kit demo`` and ``python -m concurrency_kit explain``.

``demo`` re-runs the seed chapter's experiments under every mode, with auto's reasons.

``explain MODULE:FUNCTION [ITEMS...]`` shows why auto chooses what it chooses for your
own function: it imports ``FUNCTION`` from ``MODULE`` (dotted names reach into
classes; the current directory is importable), plans it with
[`plan`][concurrency_kit.plan] on ``ITEMS`` (each a Python literal, else the plain
string) or on ``range(N)`` with ``--count N`` (default 100), and prints the plan's
mode, kind, workers, chunk size and reason, and the estimates the cost model weighed:
the plain loop and each pool it could pick, the chosen one marked. Planning runs the
first items to measure them, so the function really runs on those (their results are
discarded; the others never run). A coroutine function, or a mode forced with
``--mode``, is planned without measuring anything. Options may come before or after
the items; everything after ``--`` is an item (for items that start with ``-`` and are
not numbers)::

    python -m concurrency_kit explain concurrency_kit.tasks:factorize 2139079 1214759 1516637 1852285
    python -m concurrency_kit explain concurrency_kit.tasks:slow_systemcall --count 50
    python -m concurrency_kit explain --workers 4 mypackage.jobs:fetch -- -v --help

A target that names no function (no colon, a module that cannot be imported, a missing
attribute, something not callable) and arguments that [`plan`][concurrency_kit.plan]
rejects end the command with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: The modes ``explain --mode`` takes (``"executor"`` needs an executor object).
_EXPLAIN_MODES = ("auto", "serial", "thread", "process", "async")
#: Items ``explain`` plans without ITEMS or ``--count``.
_DEFAULT_COUNT = 100


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {least} or more, not {value}")
    return value


def _positive(text: str) -> int:
    return _whole(text, 1)


def _count(text: str) -> int:
    return _whole(text, 0)


#: What ``explain --help`` says first.
_EXPLAIN_DESCRIPTION = (
    "Plan MODULE:FUNCTION with concurrency_kit.plan() and print the plan (mode, kind, workers, chunk size, reason) "
    "with the estimates the cost model weighed: the plain loop and each pool it could pick, the chosen one marked. "
    "Planning runs the first items to measure them (their results are discarded). Everything after -- is an item "
    "(for items that start with '-' and are not numbers)."
)


def _add_explain_arguments(explain: argparse.ArgumentParser) -> None:
    explain.add_argument(
        "target", metavar="MODULE:FUNCTION", help="the function, such as concurrency_kit.tasks:factorize"
    )
    explain.add_argument(
        "items",
        metavar="ITEMS",
        nargs="*",
        help='its items, each a Python literal (3, -1.5, "\'a\'", "(1, 2)") or else the plain string',
    )
    explain.add_argument(
        "--count",
        type=_count,
        metavar="N",
        help=f"without ITEMS, plan it on range(N) (default {_DEFAULT_COUNT})",
    )
    explain.add_argument(
        "--mode", choices=_EXPLAIN_MODES, default="auto", help="force a mode (then nothing is measured)"
    )
    explain.add_argument("--workers", type=_positive, metavar="N", help="the number of threads or processes")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m concurrency_kit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="re-run the seed chapter's experiments under every mode")
    explain_parser = commands.add_parser(
        "explain",
        help="plan your own function and show why auto chooses what it chooses",
        description=_EXPLAIN_DESCRIPTION,
    )
    _add_explain_arguments(explain_parser)
    arguments = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(arguments)
    command = args.command
    if command == "explain":
        # Options may follow the items too, which argparse sorts out only intermixed (not through a subcommand).
        args = explain_parser.parse_intermixed_args(arguments[arguments.index("explain") + 1 :])
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if command == "demo":
        from ._api.demo import run_demo  # noqa: PLC0415 - only this command needs it

        run_demo(sys.stdout)
    elif command == "explain":
        from ._api.explain import UsageError, explain, load_function, parse_item  # noqa: PLC0415 - only this command

        if args.items and args.count is not None:
            explain_parser.error("give ITEMS or --count, not both")
        items: Sequence[object] = (
            [parse_item(text) for text in args.items]
            if args.items
            else range(_DEFAULT_COUNT if args.count is None else args.count)
        )
        try:
            explain(
                load_function(args.target), items, sys.stdout, name=args.target, mode=args.mode, workers=args.workers
            )
        except UsageError as exc:  # one line, as argparse's own errors, without the usage
            explain_parser.exit(2, f"{explain_parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
