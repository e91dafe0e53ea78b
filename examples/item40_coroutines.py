"""Item 40: coroutines run many functions at once, at almost no cost each.

The same fan-out, 1,000 waits of 50 ms, written two ways:

- a blocking function (``time.sleep``): what makes it concurrent is threads, one per
  wait, each with its own stack and a start-up cost;
- an ``async def`` function (``await asyncio.sleep``): coroutines, all on one thread,
  taking turns on an event loop whenever one waits.

``run_parallel`` picks threads for the first (it measures that the items wait) and an
event loop for the second (it sees a coroutine function, and runs nothing to know it).
Inside an event loop, ``arun_parallel`` does the same without ever blocking the loop.

    python examples/item40_coroutines.py
"""

from __future__ import annotations

import asyncio
import time

from concurrency_kit import arun_parallel, plan

WAITS = 1_000
SECONDS = 0.05


def wait_blocking(x: int) -> int:
    time.sleep(SECONDS)
    return x


async def wait_async(x: int) -> int:
    await asyncio.sleep(SECONDS)
    return x


def show(title: str, fn: object, **options: object) -> float:
    began = time.perf_counter()
    chosen = plan(fn, range(WAITS), **options)  # type: ignore[arg-type]
    results = chosen.run()
    took = time.perf_counter() - began
    assert results == list(range(WAITS))
    print(f"{title}: {WAITS} waits of {SECONDS * 1e3:.0f} ms in {took:.2f} s, mode {chosen.mode!r}")
    print(f"    {chosen.reason}")
    return took


async def inside_a_loop() -> None:
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:  # another task of the same loop
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(heartbeat())
    began = time.perf_counter()
    await arun_parallel(wait_blocking, range(100))  # a plain function: threads, away from the loop
    await arun_parallel(wait_async, range(WAITS))  # coroutines: on this loop
    took = time.perf_counter() - began
    done.set()
    await beating
    print(f"inside a running loop: both calls in {took:.2f} s, while the loop's heartbeat ran {ticks} times")


def main() -> None:
    one_wait = WAITS * SECONDS
    threads = show("blocking function", wait_blocking)
    coroutines = show("async def function", wait_async, workers=WAITS)
    print(f"one after another they would take {one_wait:.0f} s")
    print(f"coroutines took {coroutines / threads:.2f}x the threads' time, in one thread instead of hundreds")
    asyncio.run(inside_a_loop())
    print(
        "You should see: threads for the blocking function and 'async' for the coroutine function, both far "
        "faster than one wait after another; inside the loop, the heartbeat kept ticking (nothing blocked it)."
    )


if __name__ == "__main__":
    main()
