"""Streaming against a list: ``list(iter_parallel(...))`` against ``run_parallel(...)``, warm, on the matrix.

    python -m benchmarks.stream_throughput [--turns N] [--workloads a,b] [--smoke]

For every workload of the benchmark matrix, in one process, after a warm-up call of
each: ``run_parallel(fn, items)`` and ``list(iter_parallel(fn, items))`` in auto mode take
turns (the order alternating every turn), and the report gives each one's median and
the ratio of the medians (the target: ``iter_parallel`` within 10 %). Also:
``ordered=False`` against ``ordered=True`` on the uneven workload (never slower), and a
serial stream of trivial items against a plain generator expression (at most 1.25×).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import concurrency_kit as ck
from benchmarks.workloads import WORKLOADS, Profile, get_workload
from concurrency_kit import tasks

#: Target ratios (issue 19).
STREAM_OVER_LIST = 1.10
UNORDERED_OVER_ORDERED = 1.00
SERIAL_OVER_GENEXPR = 1.25


def _median_pair(
    first: Callable[[], object], second: Callable[[], object], turns: int, budget: float
) -> tuple[float, float]:
    """Medians of ``first`` and ``second``, called in turns (alternating which goes first), after a warm-up each."""
    times: tuple[list[float], list[float]] = ([], [])
    calls = (first, second)
    for call in calls:
        call()
    began = time.perf_counter()
    for turn in range(turns):
        order = (0, 1) if turn % 2 == 0 else (1, 0)
        for which in order:
            start = time.perf_counter()
            calls[which]()
            times[which].append(time.perf_counter() - start)
        if time.perf_counter() - began > budget and turn >= 2:
            break
    return statistics.median(times[0]), statistics.median(times[1])


def _row(name: str, a: float, b: float, target: float) -> str:
    ratio = b / a
    verdict = "ok" if ratio <= target else "MISSED"
    return f"{name:<32} {a * 1e3:9.2f} ms {b * 1e3:9.2f} ms {ratio:7.2f}x  (target <= {target:.2f}: {verdict})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=11)
    parser.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few turns")
    args = parser.parse_args()
    profile: Profile = "smoke" if args.smoke else "full"
    turns = 3 if args.smoke else args.turns
    budget = 1.0 if args.smoke else 20.0

    print(f"{'workload':<32} {'run_parallel':>12} {'iter_parallel':>13} {'ratio':>8}")
    for name in args.workloads.split(","):
        workload = get_workload(name)
        items: Sequence[Any] = workload.items(workload.size(profile))
        fn = workload.fn
        listed, streamed = _median_pair(
            lambda fn=fn, items=items: ck.run_parallel(fn, items),
            lambda fn=fn, items=items: list(ck.iter_parallel(fn, items)),
            turns,
            budget,
        )
        print(_row(name, listed, streamed, STREAM_OVER_LIST))

    uneven = get_workload("uneven_x200")
    items = uneven.items(uneven.size(profile))
    ordered, unordered = _median_pair(
        lambda: list(ck.iter_parallel(uneven.fn, items)),
        lambda: list(ck.iter_parallel(uneven.fn, items, ordered=False)),
        turns,
        budget,
    )
    print(_row("uneven: ordered=False / True", ordered, unordered, UNORDERED_OVER_ORDERED))

    trivial = list(range(200 if args.smoke else 20_000))
    square = tasks.square
    genexpr, serial = _median_pair(
        lambda: sum(1 for _ in (square(x) for x in trivial)),
        lambda: sum(1 for _ in ck.iter_parallel(square, trivial, "serial")),
        41 if not args.smoke else turns,
        budget,
    )
    print(_row("serial stream / generator expr.", genexpr, serial, SERIAL_OVER_GENEXPR))
    ck.shutdown()


if __name__ == "__main__":
    main()
