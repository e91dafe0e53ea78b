"""Item 41: consider concurrent.futures for true parallelism.

The chapter's example: the greatest common divisor of eight pairs of numbers, by a
naive search in pure Python (``concurrency_kit.tasks.gcd``). It holds the GIL, so only
separate processes make it faster, on more than one CPU. Run four ways:

- a plain loop;
- ``ProcessPoolExecutor().map``: the chapter's answer, a worker process per CPU;
- ``AutoExecutor().map``: a drop-in ``concurrent.futures.Executor`` that measures the
  function and, seeing it hold the GIL, sends it to processes too;
- ``run_parallel(gcd, pairs)``: the same choice without writing an executor at all.

    python examples/item41_futures.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from concurrency_kit import AutoExecutor, plan, usable_cpus
from concurrency_kit.tasks import GCD_PAIRS, gcd


def timed(title: str, run: Callable[[], list[int]], expected: list[int] | None = None) -> tuple[list[int], float]:
    began = time.perf_counter()
    results = run()
    took = time.perf_counter() - began
    print(f"{title:34} {took:.3f} s")
    if expected is not None:
        assert results == expected, (results, expected)
    return results, took


def with_process_pool() -> list[int]:
    with ProcessPoolExecutor() as pool:  # start-up included, as in the chapter
        return list(pool.map(gcd, GCD_PAIRS))


def with_auto_executor() -> list[int]:
    with AutoExecutor() as executor:
        return list(executor.map(gcd, GCD_PAIRS))


def main() -> None:
    print(f"gcd of {len(GCD_PAIRS)} pairs on {usable_cpus()} usable CPU(s)")
    expected, serial = timed("plain loop", lambda: [gcd(pair) for pair in GCD_PAIRS])
    # The process pool goes first, before anything here has started a thread: its
    # workers are forked on Linux (Python < 3.14), which a threaded parent should avoid.
    _, pool = timed("ProcessPoolExecutor", with_process_pool, expected)
    _, auto_executor = timed("AutoExecutor", with_auto_executor, expected)

    began = time.perf_counter()
    chosen = plan(gcd, GCD_PAIRS)  # what run_parallel(gcd, GCD_PAIRS) does, and why
    assert chosen.run() == expected
    took = time.perf_counter() - began
    print(f"{'run_parallel (auto)':34} {took:.3f} s on {chosen.mode!r}")
    print(f"    {chosen.reason}")
    print(
        f"speed-up over the loop: ProcessPoolExecutor {serial / pool:.1f}x, AutoExecutor "
        f"{serial / auto_executor:.1f}x, run_parallel {serial / took:.1f}x"
    )
    print(
        "You should see: the same gcds every way; on 2+ CPUs ProcessPoolExecutor, AutoExecutor and "
        "run_parallel ('process') all faster than the plain loop, by about the number of CPUs at best."
    )


if __name__ == "__main__":  # worker processes import this file: this guard is required
    main()
