"""Item 37: use threads for blocking I/O, avoid them for parallelism.

The seed chapter's two experiments, each run three ways:

- ``factorize`` (trial division in pure Python) over four numbers: threads are no
  faster than a plain loop, because only the thread holding the GIL runs bytecode;
- ``slow_systemcall`` (``select`` for 0.1 s) five times: threads are about five times
  faster, because a thread waiting in a system call lets go of the GIL.

For each, ``run_parallel(..., mode="serial")``, ``mode="thread"`` and auto's own choice,
with its reason: processes for the first (real parallelism, when there is more than one
CPU), threads for the second.

    python examples/item37_threads.py
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from concurrency_kit import plan, run_parallel, usable_cpus
from concurrency_kit.tasks import SEED_NUMBERS, factorize, slow_systemcall


def compare(title: str, fn: Callable[[Any], Any], items: Sequence[Any]) -> None:
    print(f"{title}, {len(items)} items:")
    took = {}
    expected = None
    for mode in ("serial", "thread"):
        began = time.perf_counter()
        results = run_parallel(fn, items, mode=mode)
        took[mode] = time.perf_counter() - began
        expected = results if expected is None else expected
        assert results == expected
        print(f"    mode={mode!r:9} {took[mode]:.3f} s")
    print(f"    threads took {took['thread'] / took['serial']:.2f}x the serial time")
    for call in ("auto", "auto again"):  # the second call finds any pool the first started warm
        began = time.perf_counter()
        chosen = plan(fn, items)  # what run_parallel(fn, items) does, and why
        results = chosen.run()
        took[call] = time.perf_counter() - began
        assert results == expected
        print(f"    {call + ':':11} {took[call]:.3f} s on {chosen.mode!r} ({chosen.reason})")


def main() -> None:
    print(f"{usable_cpus()} usable CPU(s)")
    # CPU work in Python holds the GIL: two threads only take turns.
    compare("factorize (CPU, GIL held)", factorize, SEED_NUMBERS)
    # A blocking system call releases the GIL: five threads wait at the same time.
    compare("slow_systemcall (blocking I/O)", slow_systemcall, list(range(5)))
    print(
        "You should see: for factorize, threads take about the serial time (1.0x or a little more) and auto "
        "picks 'process' (on 2+ CPUs), faster than serial once its pool is warm; for slow_systemcall, serial "
        "about 0.5 s, threads about 0.1 s (about 0.2x), and auto picks 'thread'."
    )


if __name__ == "__main__":  # worker processes import this file
    main()
