"""iter_parallel: lazy and endless inputs, the in-flight bound, order, early close, errors, timeouts.

Every mode runs every behaviour test (the ``mode`` fixture). Items that block wait for a
"release" file (or 30 s at most), released before each test ends; waits are for files
or events, polled with deadlines, never sleeps that hope something happened. The clean-up
fixture checks that no thread or child process is left.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

import concurrency_kit as ck
from concurrency_kit._backends.worker import RemoteTraceback
from helpers import (
    HelperError,
    calls_per_index,
    double,
    fail_on_13,
    make_dummy,
    record_cpu,
    record_fail_on_3,
    record_io,
    record_then_wait_from_1,
    record_trivial,
    started_items,
    still_running,
    wait_for_release,
    wait_for_starts,
    wait_io,
)

#: How long a stream may take to stop after it was closed (the promise: 1 s; the rest is
#: room for a busy two-core machine).
CLOSES_WITHIN = 2.0
#: How late a timeout may be (the promise: about half a second).
LATE = 1.5


class Counted:
    """An endless input that counts the items taken from it."""

    def __init__(self, stop: int | None = None) -> None:
        self.taken = 0
        self._stop = stop
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        with self._lock:
            if self._stop is not None and self.taken >= self._stop:
                raise StopIteration
            self.taken += 1
            return self.taken - 1


def test_an_endless_input_streams(mode: str) -> None:
    results = list(itertools.islice(ck.iter_parallel(double, itertools.count(), mode), 1000))
    assert results == [2 * x for x in range(1000)]
    assert ck.run_parallel(double, range(5), mode) == [0, 2, 4, 6, 8]  # the next call works


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("bound", [1, 8])
def test_no_more_than_max_in_flight_items_are_taken_and_not_yet_yielded(
    mode: str, bound: int, *, ordered: bool
) -> None:
    source = Counted()
    stream = ck.iter_parallel(double, source, mode, max_in_flight=bound, ordered=ordered)
    for seen, _ in enumerate(stream, 1):
        # Yielding the seen-th result, the stream holds no more than `bound` items, that one included.
        assert source.taken - seen <= bound - 1, f"{source.taken} taken, {seen} yielded"
        if seen == 200:
            break
    stream.close()


def test_a_slow_consumer_holds_back_the_workers(mode: str) -> None:
    # Workers wait for the consumer rather than pile up results: while it reads nothing,
    # no more than max_in_flight items are taken, however long it waits.
    source = Counted()
    with ck.iter_parallel(double, source, mode, max_in_flight=6) as stream:
        assert next(stream) == 0
        for _ in range(50):  # give the workers every chance to run ahead
            time.sleep(0.001)  # not synchronisation: idle time for the pools
            assert source.taken <= 7
        assert next(stream) == 2


@pytest.mark.parametrize("how", ["break", "close", "with", "exception", "garbage"])
def test_closing_early_stops_the_stream_at_once(mode: str, how: str, tmp_path: Path, release: str) -> None:
    directory = tmp_path / "started"
    directory.mkdir()
    counter = Counted()
    # The first 6 items wait 10 ms each (auto measures the first 4, max_in_flight); in
    # pools the others wait for the release (30 s at most): they are running when the
    # stream is closed. A loop runs none but the one it yields.
    blocking = mode != "serial"
    source = ((str(directory), i, release if i >= 6 and blocking else "") for i in counter)
    stream = ck.iter_parallel(_first_free, source, mode, workers=2, chunksize=1, max_in_flight=4)
    iterator = iter(stream)
    assert [next(iterator) for _ in range(4)] == [0, 1, 2, 3]
    if blocking:
        wait_for_starts(str(directory), 1)  # the next items run
    pids = {pid for _, pid in started_items(str(directory))} - {os.getpid()}
    began = time.monotonic()
    if how == "break":
        for _ in iterator:
            break
    elif how == "close":
        stream.close()
    elif how == "with":
        with stream:
            pass
    elif how == "exception":
        with pytest.raises(LookupError):
            _consume_then_raise(stream)
    taken = counter.taken
    del stream, iterator  # "garbage": dropped without closing
    gc.collect()
    took = time.monotonic() - began
    assert took < CLOSES_WITHIN, f"closing took {took:.2f} s"
    assert counter.taken == taken, "items were taken after the stream was closed"
    assert taken <= 5 + 4
    if mode == "process":
        assert not still_running(pids), "worker processes still run the closed stream's items"
    Path(release).touch()
    assert ck.run_parallel(double, range(5), mode) == [0, 2, 4, 6, 8]  # the next call works


def _consume_then_raise(stream: ck.ResultStream[int]) -> None:
    for _ in stream:
        raise LookupError


def _first_free(item: tuple[str, int, str]) -> int:
    """Wait 10 ms (I/O-bound, as auto will see), or, given a release path, for the release."""
    directory, index, release = item
    if not release:
        return wait_io(index)  # type: ignore[return-value]
    return wait_for_release((directory, index, release))


def test_in_order_results_before_a_failure_are_yielded_then_it_is_raised(mode: str) -> None:
    results: list[int] = []
    stream = ck.iter_parallel(fail_on_13, range(100), mode, chunksize=4)
    with pytest.raises(HelperError) as caught:
        results.extend(stream)
    assert results == [2 * x for x in range(13)]
    assert caught.value.__notes__ == ["concurrency_kit: raised by item 13: 13"]
    if mode == "process":
        assert isinstance(caught.value.__cause__, RemoteTraceback)


# One worker (one process; one thread, with max_io_workers=1 the shared thread pool's size)
# takes the stream's units in turn, and max_in_flight=4 keeps units queued behind the one
# it runs: in a process pool's call queue, or for a thread that takes the next the moment
# it is free. Future.cancel() reaches neither in time; the stream's stop token must.


@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("entry", ["in order", "as finished", "run_parallel"])
def test_no_item_after_a_failure_starts(mode: str, entry: str, tmp_path: Path) -> None:
    ck.configure(max_io_workers=1)
    directory = tmp_path / "started"
    directory.mkdir()
    items = [(str(directory), i) for i in range(20)]
    results: list[int] = []

    def call() -> None:
        if entry == "run_parallel":  # its list path keeps a chunk queued behind each running one too
            ck.run_parallel(record_fail_on_3, items, mode, workers=1, chunksize=1)
            return
        ordered = entry == "in order"
        stream = ck.iter_parallel(
            record_fail_on_3, iter(items), mode, ordered=ordered, workers=1, chunksize=1, max_in_flight=4
        )
        results.extend(stream)

    with pytest.raises(HelperError):
        call()
    ck.shutdown(wait=True)  # what was queued has run by now, or never will
    assert sorted(index for index, _ in started_items(str(directory))) == [0, 1, 2, 3]
    if entry == "in order":
        assert results == [0, 1, 2]
    assert set(results) <= {0, 1, 2}  # as finished, the failure may come first


@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("how", ["close", "timeout"])
def test_no_item_starts_after_a_close_or_a_timeout(mode: str, how: str, tmp_path: Path, release: str) -> None:
    ck.configure(max_io_workers=1)
    directory = tmp_path / "started"
    directory.mkdir()
    items = ((str(directory), i, release) for i in range(20))  # from item 1 on, they wait for the release
    timeout = 1.0 if how == "timeout" else None
    stream = ck.iter_parallel(
        record_then_wait_from_1, items, mode, workers=1, chunksize=1, max_in_flight=4, timeout=timeout
    )
    if how == "close":
        assert next(stream) == 0
        wait_for_starts(str(directory), 2)  # item 1 runs; 2, 3 and 4 are queued behind it
        stream.close()
    else:
        with pytest.raises(TimeoutError):
            list(stream)
    Path(release).touch()
    ck.shutdown(wait=True)  # what was queued has run by now, or never will
    assert {index for index, _ in started_items(str(directory))} <= {0, 1}


def test_return_exceptions_yields_them_in_place_and_goes_on(mode: str) -> None:
    results = list(ck.iter_parallel(fail_on_13, range(40), mode, return_exceptions=True))
    assert [r for i, r in enumerate(results) if i != 13] == [2 * x for x in range(40) if x != 13]
    assert isinstance(results[13], HelperError)


@pytest.mark.parametrize("return_exceptions", [False, True])
def test_run_parallel_returns_what_the_stream_yields(mode: str, *, return_exceptions: bool) -> None:
    for fn, items in ((double, list(range(300))), (fail_on_13, list(range(50)))):
        try:
            expected: object = ck.run_parallel(fn, items, mode, return_exceptions=return_exceptions)
        except HelperError as exc:
            expected = (type(exc), str(exc), exc.__notes__)
        for source in (items, iter(items)):  # a list is measured whole, as run_parallel measures it
            try:
                got: object = list(ck.iter_parallel(fn, source, mode, return_exceptions=return_exceptions))
            except HelperError as exc:
                got = (type(exc), str(exc), exc.__notes__)
            if return_exceptions and isinstance(expected, list) and isinstance(got, list):
                assert [repr(v) for v in got] == [repr(v) for v in expected]
            else:
                assert got == expected


def test_a_long_list_failing_while_it_is_measured_yields_the_results_before_it() -> None:
    # 20,000 tiny items: auto times the first thousands in the calling thread, at a loop's speed.
    results: list[int] = []
    with pytest.raises(HelperError) as caught:
        results.extend(ck.iter_parallel(fail_on_13, range(20_000)))
    assert results == [2 * x for x in range(13)]
    assert caught.value.__notes__ == ["concurrency_kit: raised by item 13: 13"]


def test_as_finished_a_fast_item_comes_before_a_slow_earlier_one(mode: str, tmp_path: Path, release: str) -> None:
    if mode == "serial":
        pytest.skip("a loop runs one item at a time, in order")
    directory = tmp_path / "started"
    directory.mkdir()
    items = [(str(directory), i, release if i == 0 else "") for i in range(20)]
    stream = ck.iter_parallel(_first_free, items, mode, ordered=False, workers=2, chunksize=1)
    first = [next(stream) for _ in range(5)]  # item 0 waits for the release meanwhile
    assert 0 not in first
    Path(release).touch()
    rest = list(stream)
    assert sorted(first + rest) == list(range(20))


def test_a_timeout_ends_the_stream_on_time(mode: str, tmp_path: Path, release: str) -> None:
    if mode == "serial":
        pytest.skip("an item running in the calling thread cannot be stopped")
    directory = tmp_path / "started"
    directory.mkdir()
    items = ((str(directory), i, release) for i in range(100))
    began = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout of 0\.5 s"):
        list(ck.iter_parallel(wait_for_release, items, mode, timeout=0.5, workers=2))
    took = time.monotonic() - began
    assert took < 0.5 + LATE, f"took {took:.2f} s"
    Path(release).touch()


@pytest.mark.parametrize("record", [record_trivial, record_io, record_cpu], ids=["trivial", "io", "cpu"])
@pytest.mark.parametrize("listed", [False, True])
def test_auto_runs_each_item_exactly_once(record: object, tmp_path: Path, *, listed: bool) -> None:
    directory = tmp_path / "calls"
    directory.mkdir()
    count = 120
    generated = ((str(directory), i) for i in range(count))
    items = list(generated) if listed else generated
    assert list(ck.iter_parallel(record, items)) == list(range(count))  # type: ignore[arg-type]
    assert calls_per_index(directory) == dict.fromkeys(range(count), 1)


@pytest.mark.parametrize("listed", [False, True])
def test_the_stream_keeps_no_reference_to_a_result_it_yielded(mode: str, *, listed: bool) -> None:
    # As CPython's executors promise of their map (test_free_reference): memory stays bounded
    # by what the consumer keeps.
    items = range(40) if listed else iter(range(40))
    for result in ck.iter_parallel(make_dummy, items, mode):
        watched = weakref.ref(result)
        del result
        gc.collect()
        assert watched() is None


def test_the_stream_says_how_it_runs() -> None:
    stream = ck.iter_parallel(double, range(10), "thread")
    assert (stream.mode, stream.reason) == ("thread", "mode='thread' was asked for")
    assert list(stream) == [2 * x for x in range(10)]


def test_a_stream_is_its_own_iterator(mode: str) -> None:
    # An iterator's __iter__ returns itself: next(), a for loop and close() act on one object.
    source = Counted()
    stream = ck.iter_parallel(double, source, mode, max_in_flight=4)
    assert iter(stream) is stream
    assert next(stream) == 0
    for value in stream:  # goes on from where next() left it
        assert value == 2
        break
    assert next(iter(stream)) == 4
    stream.close()
    taken = source.taken
    assert list(stream) == []  # closed: nothing more comes, and nothing more is taken
    assert source.taken == taken


def test_an_async_stream_is_its_own_async_iterator() -> None:
    async def main() -> None:
        stream = ck.aiter_parallel(double, range(5), "thread")
        assert aiter(stream) is stream
        assert await anext(stream) == 0
        async for value in stream:
            assert value == 2
            break
        await stream.aclose()
        assert [value async for value in stream] == []

    asyncio.run(main())


@pytest.mark.usefixtures("without_cloudpickle")
def test_forced_process_mode_with_a_lambda_is_an_unpicklable_task_error() -> None:
    with pytest.raises(ck.UnpicklableTaskError):
        ck.iter_parallel(lambda x: x, range(3), "process")


@pytest.mark.parametrize(("bound", "error"), [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_a_bad_max_in_flight_is_rejected(bound: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_in_flight"):
        ck.iter_parallel(double, range(3), max_in_flight=bound)  # type: ignore[arg-type]


# --- progress ---------------------------------------------------------------------------


class Told:
    """A progress callable that records what it was told, and in which thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []
        self.threads: set[int] = set()

    def __call__(self, done: int, total: int | None) -> None:
        self.calls.append((done, total))
        self.threads.add(threading.get_ident())


@pytest.mark.parametrize("entry", ["run_parallel", "iter_parallel"])
def test_progress_counts_items_not_chunks_in_the_calling_thread(mode: str, entry: str) -> None:
    told = Told()
    items = list(range(300))
    if entry == "run_parallel":
        results = ck.run_parallel(double, items, mode, chunksize=50, progress=told)
    else:
        results = list(ck.iter_parallel(double, items, mode, chunksize=50, progress=told))
    assert results == [2 * x for x in items]
    assert [done for done, _ in told.calls] == list(range(1, 301))  # only up, one item at a time
    assert {total for _, total in told.calls} == {300}
    assert told.threads == {threading.get_ident()}


def test_progress_over_an_input_of_no_length_has_no_total() -> None:
    told = Told()
    assert list(ck.iter_parallel(double, (x for x in range(20)), progress=told)) == [2 * x for x in range(20)]
    assert told.calls[-1] == (20, None)
    # run_parallel reads the input whole: it knows the total.
    told = Told()
    ck.run_parallel(double, (x for x in range(20)), progress=told)
    assert told.calls[-1] == (20, 20)


def test_a_progress_bar_names_the_mode_and_counts_every_item(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tqdm

    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # tqdm's own monitor thread would outlive the test
    assert ck.run_parallel(double, range(100), "thread", progress=True) == [2 * x for x in range(100)]
    err = capsys.readouterr().err
    assert "concurrency_kit (thread)" in err
    assert "100/100" in err


def test_a_progress_bar_without_tqdm_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "concurrency_kit\[progress\]"'):
        ck.run_parallel(double, range(3), progress=True)


def test_progress_must_be_a_bool_or_a_callable() -> None:
    with pytest.raises(TypeError, match="progress"):
        ck.iter_parallel(double, range(3), progress="yes")  # type: ignore[arg-type]
