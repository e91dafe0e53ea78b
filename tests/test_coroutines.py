"""Coroutines: recognised without running them, run on an event loop, from sync code and inside a loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import inspect
import os
import signal
import subprocess
import sys
import threading
import types
import warnings
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._decide.classify import is_coroutine_function
from helpers import extra_module, released, started_items, wait_for_release, wait_for_starts, wait_until_gone
from measured import given, probed

pytestmark = pytest.mark.filterwarnings("error")


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


async def fail_on_3(x: int) -> int:
    await asyncio.sleep(0)
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def plain_double(x: int) -> int:
    return 2 * x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x + 1


class Service:
    async def fetch(self, x: int) -> int:
        return x - 1


async def numbers(count: int) -> AsyncIterator[int]:
    for i in range(count):
        await asyncio.sleep(0)
        yield i


class Waiters:
    """Coroutines that wait until cancelled (item 0 of ``all_but_the_first`` returns at once), noting which were."""

    def __init__(self, expected: int = 0) -> None:
        self.cancelled: list[int] = []
        self.all_cancelled = asyncio.Event()  # set once ``expected`` were cancelled
        self._expected = expected

    async def forever(self, x: int) -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.append(x)
            if len(self.cancelled) == self._expected:
                self.all_cancelled.set()
            raise
        return x

    async def all_but_the_first(self, x: int) -> int:
        return x if x == 0 else await self.forever(x)


# --- recognising a coroutine function, without calling it ---------------------------------


def _marked() -> Any:
    def wrapper(x: int) -> Any:
        return double(x)

    return inspect.markcoroutinefunction(wrapper)  # type: ignore[attr-defined, unused-ignore]


FORMS = {
    "async def": lambda: double,
    "partial": lambda: functools.partial(double),
    "nested partial": lambda: functools.partial(functools.partial(double)),
    "async __call__": AsyncCallable,
    "partial of async __call__": lambda: functools.partial(AsyncCallable()),
    "bound async method": lambda: Service().fetch,
}
if sys.version_info >= (3, 12):
    FORMS["markcoroutinefunction"] = _marked


@pytest.mark.parametrize("form", FORMS)
def test_every_coroutine_function_form_is_recognised_and_run(form: str) -> None:
    fn = FORMS[form]()
    assert is_coroutine_function(fn)
    chosen = ck.plan(fn, [1, 2, 3])
    assert (chosen.mode, chosen.kind) == ("async", TaskKind.ASYNC)
    assert "coroutine function" in chosen.reason
    assert chosen.run() == [fn_result(form, x) for x in [1, 2, 3]]


def fn_result(form: str, x: int) -> int:
    return {"async __call__": x + 1, "partial of async __call__": x + 1, "bound async method": x - 1}.get(form, 2 * x)


@pytest.mark.parametrize("fn", [plain_double, lambda x: x, abs, functools.partial(plain_double), str.upper])
def test_plain_functions_are_not_coroutine_functions(fn: Any) -> None:
    assert not is_coroutine_function(fn)


def test_recognising_never_calls_the_function() -> None:
    calls: list[int] = []

    async def recorded(x: int) -> int:
        calls.append(x)
        return x

    chosen = ck.plan(recorded, range(5))
    assert chosen.mode == "async"
    assert calls == []  # a plan of coroutines measures nothing


def says_cpu(_fn: object, _sample: object) -> str:
    return "cpu"


def test_a_coroutine_function_wins_over_classifiers() -> None:
    chosen = ck.plan(double, [1], classifier=says_cpu)
    assert chosen.kind is TaskKind.ASYNC


def test_the_default_bound_is_256_and_the_reason_says_so() -> None:
    many = ck.plan(double, range(1000))
    assert many.workers == 256
    assert "at most 256 at a time" in many.reason
    assert ck.plan(double, range(3)).workers == 3
    assert ck.plan(double, range(1000), workers=10).workers == 10
    assert "workers=10" in ck.plan(double, range(1000), workers=10).reason


# --- from synchronous code: a private loop ----------------------------------------------------


def test_run_parallel_returns_results_in_order() -> None:
    assert ck.run_parallel(double, range(50)) == [2 * x for x in range(50)]


def test_iter_parallel_streams_in_order_and_as_finished() -> None:
    with ck.iter_parallel(double, iter(range(30))) as results:
        assert results.mode == "async"
        assert list(results) == [2 * x for x in range(30)]
    assert sorted(ck.iter_parallel(double, range(30), ordered=False)) == [2 * x for x in range(30)]


def test_no_more_than_workers_coroutines_run_at_once_and_that_many_do() -> None:
    state = {"now": 0, "most": 0}
    full = asyncio.Event()

    async def counted(x: int) -> int:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        if state["now"] == 5:
            full.set()
        await full.wait()  # the first five wait for each other: five are in flight at once
        await asyncio.sleep(0)
        state["now"] -= 1
        return x

    assert ck.run_parallel(counted, range(40), workers=5) == list(range(40))
    assert state["most"] == 5


def test_the_coroutines_run_concurrently() -> None:
    arrived = 0
    everyone = asyncio.Event()

    async def meet(x: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == 300:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), 30)  # only if all 300 are in flight at once
        return x

    assert ck.run_parallel(meet, range(300), workers=300) == list(range(300))


def test_the_first_exception_is_raised_with_its_item() -> None:
    with pytest.raises(ValueError, match="bad item 3") as info:
        ck.run_parallel(fail_on_3, range(10))
    assert "concurrency_kit: raised by item 3: 3" in info.value.__notes__
    assert ck.run_parallel(fail_on_3, range(5), return_exceptions=True)[:3] == [0, 1, 2]
    collected = ck.run_parallel(fail_on_3, range(5), return_exceptions=True)
    assert isinstance(collected[3], ValueError)
    assert collected[4] == 4


def test_a_stream_yields_the_results_before_the_failure_first() -> None:
    results = ck.iter_parallel(fail_on_3, range(10))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad item 3"):
        next(results)


def test_a_timeout_cancels_the_coroutines_in_flight() -> None:
    waiters = Waiters()
    with pytest.raises(TimeoutError, match="cancelled"):
        ck.run_parallel(waiters.forever, range(4), timeout=0.05)
    assert sorted(waiters.cancelled) == [0, 1, 2, 3]


def test_closing_a_stream_early_cancels_what_is_in_flight() -> None:
    waiters = Waiters()
    results = ck.iter_parallel(waiters.all_but_the_first, range(6))
    assert next(results) == 0
    results.close()
    assert sorted(waiters.cancelled) == [1, 2, 3, 4, 5]


def test_the_callers_context_reaches_the_coroutines() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("caller's")

    async def read(_: int) -> str:
        return var.get("unset")

    assert ck.run_parallel(read, range(3)) == ["caller's"] * 3
    assert list(ck.iter_parallel(read, range(3))) == ["caller's"] * 3


def test_progress_is_told_in_the_calling_thread() -> None:
    told: list[tuple[int, int | None, threading.Thread]] = []
    ck.run_parallel(
        double, range(5), progress=lambda done, total: told.append((done, total, threading.current_thread()))
    )
    assert [(done, total) for done, total, _ in told] == [(i, 5) for i in range(1, 6)]
    assert {thread for _, _, thread in told} == {threading.current_thread()}


def test_asyncio_run_and_the_threads_event_loop_are_left_as_they_were() -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        assert ck.run_parallel(double, [1, 2]) == [2, 4]
        assert asyncio.get_event_loop_policy().get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert asyncio.run(double(4)) == 8


def test_inside_a_running_loop_the_sync_forms_name_the_async_ones() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="arun_parallel"):
            ck.run_parallel(double, [1])
        with pytest.raises(RuntimeError, match="aiter_parallel"):
            ck.iter_parallel(double, [1])

    asyncio.run(main())


def test_a_coroutine_function_in_a_forced_sync_mode_is_a_type_error() -> None:
    for mode in ("serial", "thread", "process"):
        with pytest.raises(TypeError, match="un-awaited"):
            ck.run_parallel(double, [1], mode=mode)
    with pytest.raises(TypeError, match="event loop"):
        ck.run_parallel(double, [1], executor=ck.AutoExecutor())


def test_mode_async_with_a_plain_function_is_a_type_error_that_says_why() -> None:
    with pytest.raises(TypeError, match="not a coroutine function"):
        ck.run_parallel(plain_double, [1, 2], mode="async")


def test_mode_async_awaits_what_a_plain_function_returns() -> None:
    def disguised(x: int) -> Any:  # a plain function that makes coroutines
        return double(x)

    assert ck.run_parallel(disguised, [1, 2], mode="async") == [2, 4]


@pytest.mark.parametrize("mode", ["auto", "serial", "thread", "process"])
def test_a_plain_function_that_returns_coroutines_is_an_error_naming_the_item(mode: str) -> None:
    def disguised(x: int) -> Any:
        return double(x)

    fn = disguised if mode != "process" else _returns_coroutine
    with pytest.raises(TypeError, match=r"item \d+ .*mode='async'"):
        ck.run_parallel(fn, [1, 2, 3], mode=mode)
    with warnings.catch_warnings():
        # Threads ran other chunks meanwhile, whose coroutines nobody closes: they may warn.
        warnings.simplefilter("ignore" if mode == "thread" else "error", RuntimeWarning)
        with pytest.raises(TypeError, match=r"item \d+ .*mode='async'"):
            list(ck.iter_parallel(fn, [1, 2, 3], mode=mode))


def _returns_coroutine(x: int) -> Any:
    return double(x)


# --- every result is checked, not only the first: a coroutine in the middle ------------------


def _coroutine_for_5(x: int) -> Any:
    """A plain function that makes a coroutine for item 5 only (at module level: process mode pickles it)."""
    return double(x) if x == 5 else 2 * x


class Pending:
    """An awaitable that is not a coroutine: a class with ``__await__`` (picklable: it comes back from a worker)."""

    def __await__(self) -> Any:
        return iter(())


def _coroutine_then_failure(x: int) -> Any:
    if x == 7:
        raise ValueError("item 7 fails")
    return _coroutine_for_5(x)


def _pending_for_5(x: int) -> Any:
    return Pending() if x == 5 else 2 * x


@types.coroutine
def _legacy_coroutine() -> Any:  # a generator-based coroutine: awaitable, though a generator
    yield


def _legacy_for_5(x: int) -> Any:
    return _legacy_coroutine() if x == 5 else 2 * x


#: The entry points that take a plain function, each drained to a list by :func:`_drain`.
SYNC_ENTRIES = (
    "run_parallel",
    "plan.run",
    "iter_parallel",
    "iter_parallel over a generator",
    "iter_parallel with progress",
)


def _drain(entry: str, fn: Callable[[int], Any], items: list[int], mode: str, *, collect: bool = False) -> list[Any]:
    if entry == "run_parallel":
        return ck.run_parallel(fn, items, mode, return_exceptions=collect)
    if entry == "plan.run":
        return ck.plan(fn, items, mode, return_exceptions=collect).run()
    source = iter(items) if entry == "iter_parallel over a generator" else items
    told = (lambda _done, _total: None) if entry == "iter_parallel with progress" else None
    return list(ck.iter_parallel(fn, source, mode, return_exceptions=collect, progress=told))


def _no_coroutine_left_unclosed() -> None:
    gc.collect()  # an un-awaited coroutine still open would warn now (an error here)


@pytest.mark.parametrize("return_exceptions", [False, True], ids=["raising", "collecting"])
@pytest.mark.parametrize("entry", SYNC_ENTRIES)
@pytest.mark.parametrize("mode", ["auto", "serial", "thread", "process"])
def test_a_coroutine_in_the_middle_is_an_error_naming_its_item(
    mode: str, entry: str, *, return_exceptions: bool
) -> None:
    # Not collected with return_exceptions: the error is the caller's, not fn's.
    with pytest.raises(TypeError, match=r"awaitable \(coroutine.*item 5 \(5\).*mode='async'"):
        _drain(entry, _coroutine_for_5, list(range(10)), mode, collect=return_exceptions)
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("entry", ["run_parallel", "iter_parallel"])
def test_auto_checks_the_results_after_the_measured_ones(entry: str) -> None:
    def late(x: int) -> Any:
        return double(x) if x == 19_999 else x

    with pytest.raises(TypeError, match=r"item 19999 "):
        _drain(entry, late, list(range(20_000)), "auto")
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("mode", ["serial", "thread", "process"])
def test_a_stream_yields_the_results_before_the_coroutine_then_raises(mode: str) -> None:
    stream = ck.iter_parallel(_coroutine_for_5, range(10), mode, chunksize=3)
    assert [next(stream) for _ in range(5)] == [0, 2, 4, 6, 8]
    with pytest.raises(TypeError, match=r"item 5 "):
        next(stream)
    assert list(stream) == []
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("mode", ["serial", "thread", "process"])
def test_a_coroutine_for_item_0_is_not_collected_either(mode: str) -> None:
    with pytest.raises(TypeError, match=r"item 0 "):
        ck.run_parallel(_returns_coroutine, range(3), mode, return_exceptions=True)
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("fn", [_pending_for_5, _legacy_for_5], ids=["__await__", "generator-based"])
@pytest.mark.parametrize("mode", ["serial", "thread", "process"])
def test_any_awaitable_in_the_middle_is_an_error(mode: str, fn: Callable[[int], Any]) -> None:
    for entry in ("run_parallel", "iter_parallel"):
        with pytest.raises(TypeError, match=r"item 5 "):
            _drain(entry, fn, list(range(10)), mode)


@pytest.mark.parametrize(
    ("entry", "mode"),
    [("run_parallel", "thread"), ("run_parallel", "process")]
    + [("iter_parallel", mode) for mode in ("serial", "thread", "process")],
)
def test_an_awaitable_before_a_failure_is_the_error_raised(entry: str, mode: str) -> None:
    # One worker: item 5 has run when item 7 fails. (A loop over a list in the calling
    # thread loses the results of a span that fails: there the failure is raised.)
    call = ck.run_parallel if entry == "run_parallel" else ck.iter_parallel
    with pytest.raises(TypeError, match=r"item 5 "):
        list(call(_coroutine_then_failure, range(10), mode, workers=1, chunksize=10))
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("entry", ["run_parallel", "iter_parallel"])
@pytest.mark.parametrize("return_exceptions", [False, True], ids=["raising", "collecting"])
def test_through_an_executor_a_coroutine_in_the_middle_is_an_error(entry: str, *, return_exceptions: bool) -> None:
    call = ck.run_parallel if entry == "run_parallel" else ck.iter_parallel
    with ThreadPoolExecutor(2) as executor, pytest.raises(TypeError, match=r"item 5 "):
        list(call(_coroutine_for_5, range(10), executor=executor, return_exceptions=return_exceptions))
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("mode", ["auto", "thread", "process"])
def test_auto_executor_map_raises_for_a_coroutine_in_the_middle(mode: str) -> None:
    with ck.AutoExecutor(mode=mode) as executor, pytest.raises(TypeError, match=r"item 5 "):
        list(executor.map(_coroutine_for_5, range(10)))
    _no_coroutine_left_unclosed()


@pytest.mark.parametrize("mode", ["auto", "serial", "thread", "process"])
def test_inside_a_loop_a_plain_function_with_a_coroutine_in_the_middle_is_an_error(mode: str) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match=r"item 5 "):
            await ck.arun_parallel(_coroutine_for_5, range(10), mode, return_exceptions=True)
        stream = ck.aiter_parallel(_coroutine_for_5, range(10), mode)
        with pytest.raises(TypeError, match=r"item 5 "):
            assert [value async for value in stream] == []
        await stream.aclose()

    asyncio.run(main())
    _no_coroutine_left_unclosed()


def test_under_uvloop() -> None:
    uvloop = extra_module("uvloop")

    async def on_uvloop(x: int) -> bool:
        return isinstance(asyncio.get_running_loop(), uvloop.Loop)

    async def main() -> list[Any]:
        return await ck.arun_parallel(on_uvloop, range(3))

    assert uvloop.run(main()) == [True] * 3
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as uvloop.install() does
    try:
        assert ck.run_parallel(on_uvloop, range(3)) == [True] * 3  # the private loop is the policy's
    finally:
        asyncio.set_event_loop_policy(previous)


# --- inside a running loop: arun_parallel and aiter_parallel -------------------------------------


def test_coroutines_run_on_the_callers_loop() -> None:
    async def which_loop(_: int) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def main() -> None:
        loops = await ck.arun_parallel(which_loop, range(5))
        assert set(loops) == {asyncio.get_running_loop()}

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["auto", "serial", "thread", "process"])
def test_a_plain_function_never_blocks_the_loop(mode: str, calls_dir: str, release: str) -> None:
    """Each item waits for a file that only a task on the loop creates: a blocked loop would never create it."""

    async def main() -> list[int]:
        async def let_them_finish() -> None:
            await asyncio.to_thread(wait_for_starts, calls_dir, 1)
            Path(release).touch()

        helper = asyncio.create_task(let_them_finish())
        results = await ck.arun_parallel(released, [(calls_dir, i, release) for i in range(4)], mode=mode)
        await helper
        return results

    assert asyncio.run(main()) == [True] * 4  # each saw the file: the loop ran while they waited


def test_an_async_iterable_feeds_coroutines_and_plain_functions() -> None:
    async def main() -> None:
        assert await ck.arun_parallel(double, numbers(20)) == [2 * x for x in range(20)]
        assert await ck.arun_parallel(plain_double, numbers(20)) == [2 * x for x in range(20)]
        assert [x async for x in ck.aiter_parallel(plain_double, numbers(5), mode="thread")] == [0, 2, 4, 6, 8]

    asyncio.run(main())


def test_aiter_parallel_in_order_and_as_finished() -> None:
    async def main() -> None:
        stream = ck.aiter_parallel(double, range(20))
        assert stream.mode == "async"
        assert [x async for x in stream] == [2 * x for x in range(20)]
        assert sorted([x async for x in ck.aiter_parallel(double, range(20), ordered=False)]) == [
            2 * x for x in range(20)
        ]
        with given(probe=probed(1e-7, 1.0, items=1)):  # a plain function: the probe times its first item, tiny
            plain = ck.aiter_parallel(plain_double, range(5))
            assert [x async for x in plain] == [0, 2, 4, 6, 8]
        assert plain.mode == "serial", plain.reason
        assert plain.reason

    asyncio.run(main())


def test_max_in_flight_bounds_the_coroutines_taken() -> None:
    taken: list[int] = []

    def source() -> Any:
        for i in range(100):
            taken.append(i)
            yield i

    async def main() -> None:
        stream = ck.aiter_parallel(double, source(), max_in_flight=4)
        first = await anext(stream)
        assert first == 0
        assert len(taken) <= 5  # four in flight, and the one being read
        await stream.aclose()

    asyncio.run(main())


def test_break_and_aclose_cancel_what_is_in_flight() -> None:
    waiters = Waiters()

    async def main() -> None:
        async with ck.aiter_parallel(waiters.all_but_the_first, range(5)) as stream:
            async for value in stream:
                assert value == 0
                break
        assert sorted(waiters.cancelled) == [1, 2, 3, 4]
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


def test_cancelling_the_awaiting_task_cancels_the_coroutines() -> None:
    cancelled: list[int] = []
    started = 0
    all_started = asyncio.Event()

    async def forever(x: int) -> int:
        nonlocal started
        started += 1
        if started == 8:
            all_started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    async def main() -> None:
        task = asyncio.create_task(ck.arun_parallel(forever, range(100), workers=8))
        await asyncio.wait_for(all_started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(cancelled) == list(range(8))
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


def test_cancelling_kills_the_worker_processes_running_its_items(calls_dir: str, release: str) -> None:
    async def main() -> None:
        items = [(calls_dir, i, release) for i in range(2)]
        task = asyncio.create_task(ck.arun_parallel(wait_for_release, items, mode="process", workers=2))
        await asyncio.to_thread(wait_for_starts, calls_dir, 2)
        pids = {pid for _, pid in started_items(calls_dir)}
        assert len(pids) == 2
        assert os.getpid() not in pids
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not wait_until_gone(pids, 10)

    asyncio.run(main())


def test_asyncio_timeout_around_a_plain_function_in_processes(calls_dir: str, release: str) -> None:
    async def main() -> None:
        items = [(calls_dir, i, release) for i in range(2)]

        async def expire_once_started(scope: asyncio.Timeout) -> None:
            await asyncio.to_thread(wait_for_starts, calls_dir, 2)
            scope.reschedule(asyncio.get_running_loop().time())

        with pytest.raises(TimeoutError):  # noqa: PT012 - the timeout's scope is what raises
            async with asyncio.timeout(None) as scope:
                expiry = asyncio.create_task(expire_once_started(scope))
                await ck.arun_parallel(wait_for_release, items, mode="process", workers=2)
        await expiry
        pids = {pid for _, pid in started_items(calls_dir)}
        assert len(pids) == 2
        assert not wait_until_gone(pids, 10)

    asyncio.run(main())


def test_timeout_and_errors_inside_a_loop() -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            await ck.arun_parallel(lambda _: asyncio.sleep(30), range(3), mode="async", timeout=0.05)
        with pytest.raises(ValueError, match="bad item 3") as info:
            await ck.arun_parallel(fail_on_3, range(6))
        assert "concurrency_kit: raised by item 3: 3" in info.value.__notes__
        collected = await ck.arun_parallel(fail_on_3, range(5), return_exceptions=True)
        assert isinstance(collected[3], ValueError)
        with pytest.raises(ZeroDivisionError) as plain:
            await ck.arun_parallel(lambda x: 1 / x, [1, 0, 2])
        assert "concurrency_kit: raised by item 1: 0" in plain.value.__notes__

    asyncio.run(main())


def test_progress_is_told_in_the_loops_thread() -> None:
    told: list[tuple[int, int | None]] = []

    async def main() -> None:
        await ck.arun_parallel(double, range(4), progress=lambda done, total: told.append((done, total)))
        assert told == [(1, 4), (2, 4), (3, 4), (4, 4)]
        told.clear()
        await ck.arun_parallel(plain_double, range(3), progress=lambda done, total: told.append((done, total)))
        assert told == [(1, 3), (2, 3), (3, 3)]

    asyncio.run(main())


def test_bad_arguments_are_reported_at_once() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="iterable"):
            ck.aiter_parallel(double, 3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="mode"):
            await ck.arun_parallel(double, [1], mode="fast")
        with pytest.raises(TypeError, match="un-awaited"):
            await ck.arun_parallel(double, [1], mode="thread")

    asyncio.run(main())
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        ck.aiter_parallel(double, [1])


def test_under_trio_the_error_says_what_to_do() -> None:
    trio = extra_module("trio")

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"trio\.to_thread\.run_sync"):
            await ck.arun_parallel(double, [1])

    trio.run(main)


# --- AutoExecutor: a coroutine function's calls are awaited on its own loop ----------------------


def test_auto_executor_awaits_coroutine_functions() -> None:
    with ck.AutoExecutor() as executor:
        futures = [executor.submit(double, i) for i in range(5)]
        assert [future.result(timeout=30) for future in futures] == [0, 2, 4, 6, 8]
        assert list(executor.map(double, range(4))) == [0, 2, 4, 6]
        assert executor.submit(plain_double, 3).result(timeout=30) == 6
        with pytest.raises(ValueError, match="bad item 3"):
            executor.submit(fail_on_3, 3).result(timeout=30)


def test_auto_executor_in_async_mode_needs_awaitables() -> None:
    with ck.AutoExecutor(mode="async") as executor:
        with pytest.raises(TypeError, match="not a coroutine function"):
            executor.submit(plain_double, 2).result(timeout=30)
        assert executor.submit(functools.partial(double), 2).result(timeout=30) == 4


def test_auto_executor_shutdown_cancels_waiting_coroutines() -> None:
    executor = ck.AutoExecutor()
    blocked = executor.submit(asyncio.sleep, 3600)  # a coroutine function of the standard library
    executor.shutdown(wait=True, cancel_futures=True)
    assert blocked.cancelled()


_CTRL_C_SCRIPT = """
import asyncio, os, sys
import concurrency_kit as ck

started, cancelled = sys.argv[1], sys.argv[2]

async def forever(i):
    open(os.path.join(started, f"{i}.{os.getpid()}"), "w").close()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        open(os.path.join(cancelled, str(i)), "w").close()
        raise

if __name__ == "__main__":
    ck.run_parallel(forever, range(4))
"""


def test_ctrl_c_cancels_the_coroutines_of_a_private_loop(tmp_path: Path) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(_CTRL_C_SCRIPT)
    started, cancelled = tmp_path / "started", tmp_path / "cancelled"
    started.mkdir()
    cancelled.mkdir()
    child = subprocess.Popen(
        [sys.executable, str(script), str(started), str(cancelled)], stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_starts(str(started), 4, child=child)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert "KeyboardInterrupt" in err, err
    assert sorted(os.listdir(cancelled)) == ["0", "1", "2", "3"]


def test_a_stream_dropped_unclosed_is_stopped() -> None:
    waiters = Waiters(expected=3)

    async def main() -> None:
        stream = ck.aiter_parallel(waiters.all_but_the_first, range(4))
        assert await anext(stream) == 0
        del stream  # no aclose(): dropping it stops it
        gc.collect()
        await asyncio.wait_for(waiters.all_cancelled.wait(), 30)
        assert sorted(waiters.cancelled) == [1, 2, 3]

    asyncio.run(main())
