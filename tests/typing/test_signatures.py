"""The public signatures, as a strict type checker sees them (pyright strict and mypy --strict check this file).

Each ``assert_type`` is checked statically; the calls also run, so the types are those
of real results.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Literal, assert_type, get_args

import concurrency_kit as ck
from concurrency_kit._api.calls import ModeName
from concurrency_kit._core.options import MODES


def double(x: int) -> int:
    return 2 * x


def name(x: int) -> str:
    return str(x)


async def fetch(x: int) -> bytes:
    await asyncio.sleep(0)
    return bytes([x])


def test_run_parallel_returns_a_list_of_the_functions_results() -> None:
    assert_type(ck.run_parallel(double, [1, 2]), list[int])
    assert_type(ck.run_parallel(name, range(3), "serial"), list[str])
    assert_type(ck.run_parallel(fetch, [1, 2]), list[bytes])  # a coroutine function: its awaited results


def test_iter_parallel_yields_the_functions_results() -> None:
    stream = ck.iter_parallel(double, iter([1, 2]))
    assert_type(stream, ck.ResultStream[int])
    results: Iterator[int] = stream
    assert list(results) == [2, 4]
    assert_type(next(ck.iter_parallel(fetch, [1])), bytes)


def test_plan_runs_to_a_list_of_results() -> None:
    chosen = ck.plan(double, [1, 2])
    assert_type(chosen, ck.Plan[int])
    assert_type(chosen.run(), list[int])
    assert_type(ck.plan(fetch, [1]).run(), list[bytes])


def test_the_async_forms() -> None:
    async def main() -> None:
        pending: Awaitable[list[bytes]] = ck.arun_parallel(fetch, [1, 2])
        assert await pending == [b"\x01", b"\x02"]
        assert_type(await ck.arun_parallel(double, [1]), list[int])
        stream = ck.aiter_parallel(fetch, [3])
        assert_type(stream, ck.AsyncResultStream[bytes])
        results: AsyncIterator[bytes] = stream
        assert [x async for x in results] == [b"\x03"]
        assert_type([x async for x in ck.aiter_parallel(name, [4])], list[str])

    asyncio.run(main())


def test_mode_is_a_literal_of_every_mode() -> None:
    def check(mode: ModeName) -> None:
        assert_type(mode, Literal["auto", "serial", "thread", "process", "executor", "async"])

    check("thread")
    assert set(get_args(ModeName)) == set(MODES)


def test_a_classifier_and_the_decorators_keep_types() -> None:
    def classify(fn: object, sample: tuple[object, ...]) -> ck.TaskKind | None:
        return ck.TaskKind.IO if sample else None

    decorated: Callable[[int], int] = ck.io_bound(double)
    assert decorated is double
    assert_type(ck.run_parallel(double, [1], classifier=classify), list[int])
