"""Importable stage functions for the pipeline tests (process stages pickle them by reference)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator

import concurrency_kit as ck


class StageError(Exception):
    """Raised by a stage on purpose."""


def same(x: int) -> int:
    return x


def double(x: int) -> int:
    return 2 * x


def not_multiple_of_3(x: int) -> bool:
    return x % 3 != 0


def pair(x: int) -> list[int]:
    return [x, -x]


def fail_at_10(x: int) -> int:
    if x == 10:
        raise StageError(f"stage failed at {x}")
    return x


def fail_on_even_tens(x: int) -> int:
    if x % 20 == 0:
        raise StageError(f"stage failed at {x}")
    return x


def jitter(x: int) -> int:
    time.sleep(random.random() / 1000)  # items finish out of order: what ordering must undo
    return x


def jitter_keep(x: int) -> bool:
    time.sleep(random.random() / 1000)
    return x % 4 != 1


def jitter_spread(x: int) -> list[int]:
    time.sleep(random.random() / 1000)
    return list(range(x % 3))


async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def async_inc(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


def wait_ms(milliseconds: float):  # type: ignore[no-untyped-def]
    """A stage function that waits ``milliseconds`` per item."""

    def stage(x: int) -> int:
        time.sleep(milliseconds / 1000)
        return x

    stage.__name__ = f"wait_{milliseconds:g}ms"
    return stage


class Counted:
    """An endless (or ``stop``-long) source that counts what was taken, and knows when its ``finally`` ran."""

    def __init__(self, stop: int | None = None, fail_at: int | None = None) -> None:
        self.stop, self.fail_at = stop, fail_at
        self.taken = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[int]:
        try:
            index = 0
            while self.stop is None or index < self.stop:
                if index == self.fail_at:
                    raise StageError(f"source failed at {index}")
                self.taken += 1
                yield index
                index += 1
        finally:
            self.closed.set()


def spin_ms(milliseconds: int) -> int:
    """Compute (bytecode, holding the GIL) for about ``milliseconds``; return it."""
    end = time.perf_counter() + milliseconds / 1000
    count = 0
    while time.perf_counter() < end:
        count += 1
    return milliseconds


def spin_again_ms(milliseconds: int) -> int:
    """``spin_ms`` under another name (a second computing stage)."""
    return spin_ms(milliseconds)


@ck.cpu_bound
def spin_once_ms(milliseconds: int) -> int:
    """``spin_ms``, declared to compute (a stage no other test's memory reads)."""
    return spin_ms(milliseconds)


@ck.cpu_bound
def spin_triple_ms(milliseconds: int) -> int:
    """``spin_ms`` three times over: a stage three times as dear; return ``milliseconds``."""
    spin_ms(3 * milliseconds)
    return milliseconds


def below_3(x: int) -> bool:
    """A cheap filter (a stage of its own, so that no other test's memory of it counts)."""
    return x < 3


@ck.cpu_bound  # known to compute: it fuses with its computing neighbour however busy the machine
def spin_pair_ms(milliseconds: int) -> list[int]:
    """Compute for ``milliseconds``; two items: ``milliseconds`` and one more."""
    return [spin_ms(milliseconds), milliseconds + 1]


@ck.cpu_bound
def spin_fail_odd_ms(milliseconds: int) -> int:
    """Compute for ``milliseconds``, then fail where it is odd."""
    spin_ms(milliseconds)
    if milliseconds % 2:
        raise StageError(f"odd: {milliseconds}")
    return milliseconds


def fail_negative(x: int) -> int:
    """Fail where ``x`` is below 0."""
    if x < 0:
        raise StageError(f"negative: {x}")
    return x
