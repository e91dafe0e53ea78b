"""Items that both wait and compute: auto, call by call, against forced threads and processes.

Run ``python -m benchmarks.mixed`` from the repository root (``--help`` for the options).
Not part of the regret table: these items show how auto handles work between I/O and
computing, which turns on the number of cores (on two, threads win; on sixteen,
processes can win several times over), and on what a function's earlier calls taught it.
Each workload runs in its own turn: ``--calls`` calls of auto (the first ones teach it),
then forced process and thread mode, alternating; the figures are medians of the later
calls.
"""

from __future__ import annotations

import argparse
import select
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import concurrency_kit as ck
from benchmarks.workloads import SPIN_1MS, spin

__all__ = ["MIXED", "compute_then_wait", "main", "uneven_wait_then_compute", "wait_then_compute"]

#: Calls of auto that may still be learning the function: not in its median.
LEARNING_CALLS = 2


def _wait(milliseconds: float) -> None:
    select.select([], [], [], milliseconds / 1000)


def wait_then_compute(item: tuple[int, int]) -> int:
    """Wait 20 ms, then compute ``item[0]`` ms of bytecode (fetch, then parse)."""
    _wait(20)
    return spin(item[0] * SPIN_1MS) + item[1]


def compute_then_wait(item: tuple[int, int]) -> int:
    """Compute ``item[0]`` ms of bytecode, then wait 20 ms (build a request, then send it)."""
    value = spin(item[0] * SPIN_1MS) + item[1]
    _wait(20)
    return value


def uneven_wait_then_compute(item: tuple[int, int]) -> int:
    """Wait 0-39 ms (by index: the first items wait least), then compute ``item[0]`` ms."""
    _wait(item[1] * 7 % 40)
    return spin(item[0] * SPIN_1MS) + item[1]


#: name → (function, items of (milliseconds of computing, index)).
MIXED: dict[str, tuple[Callable[[tuple[int, int]], int], list[tuple[int, int]]]] = {
    "wait20_compute2_x40": (wait_then_compute, [(2, i) for i in range(40)]),
    "wait20_compute6_x64": (wait_then_compute, [(6, i) for i in range(64)]),
    "wait20_compute12_x64": (wait_then_compute, [(12, i) for i in range(64)]),
    "compute6_wait20_x64": (compute_then_wait, [(6, i) for i in range(64)]),
    "unevenwait_compute1_x40": (uneven_wait_then_compute, [(1, i) for i in range(40)]),
}


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def measure(
    fn: Callable[[tuple[int, int]], int], items: Sequence[tuple[int, int]], calls: int
) -> tuple[list[str], dict[str, float]]:
    """Auto's modes call by call, and the medians of auto's later calls and of the forced modes."""
    modes: list[str] = []
    timings: dict[str, list[float]] = {"auto": [], "process": [], "thread": []}
    for _ in range(calls):
        plan = ck.plan(fn, items)
        timings["auto"].append(_timed(plan.run))
        modes.append(plan.mode)
    for _ in range(max(1, calls - LEARNING_CALLS)):
        for mode in ("process", "thread"):
            timings[mode].append(_timed(lambda mode=mode: ck.run_parallel(fn, items, mode=mode)))
    later = timings["auto"][LEARNING_CALLS:] or timings["auto"]
    return modes, {
        "auto": statistics.median(later),
        "process": statistics.median(timings["process"]),
        "thread": statistics.median(timings["thread"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print, per workload, auto's mode call by call and its median against the forced modes."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mixed", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8, help="calls of auto per workload (default 8)")
    parser.add_argument("--workloads", help=f"comma-separated, of: {', '.join(MIXED)} (default all)")
    args = parser.parse_args(argv)
    names = args.workloads.split(",") if args.workloads else list(MIXED)
    unknown = [name for name in names if name not in MIXED]
    if unknown or args.calls < 1:
        parser.error(f"unknown workloads: {', '.join(unknown)}" if unknown else "--calls must be at least 1")
    python = sys.version.split()[0]
    print(f"{ck.usable_cpus()} usable CPUs, Python {python}; medians of calls after the first {LEARNING_CALLS}")
    try:
        for name in names:
            fn, items = MIXED[name]
            modes, median = measure(fn, items, args.calls)
            best = min(median["process"], median["thread"])
            print(
                f"{name:24} auto {median['auto'] * 1e3:7.1f} ms  process {median['process'] * 1e3:7.1f} ms  "
                f"thread {median['thread'] * 1e3:7.1f} ms  auto/best {median['auto'] / best:5.2f}  "
                f"calls: {' '.join(mode[0] for mode in modes)}",
                flush=True,
            )
    finally:
        ck.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
