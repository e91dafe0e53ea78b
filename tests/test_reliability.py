"""Fault injection: failures, timeouts, dead workers, Ctrl-C, unpicklable tasks, races.

Every wait here is for a file, an Event or a Barrier (files are polled, with a deadline),
never a sleep that merely hopes something has happened. Items that block do so until the
test creates a "release" file (or for 30 s at most), and every test releases them before
it ends, so nothing is left running for the clean-up check. Timing checks have wide
margins: a call that must give up "on time" only has to beat work far longer than its
timeout.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import reprlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import psutil
import pytest

import concurrency_kit as ck
from concurrency_kit._backends.worker import RemoteTraceback, run_pickled_chunk
from concurrency_kit._decide import measuring as _measuring
from helpers import (
    CULPRITS,
    HelperError,
    TwoArgumentError,
    calls_per_index,
    die_on_culprits,
    double,
    exit_on_3,
    factorize_first,
    fail_first_others_wait,
    fail_on_13,
    fail_on_long,
    faulthandler_sigsegv_on_3,
    generate_then_fail,
    negate,
    raise_unrebuildable_on_3,
    record_die_on_13,
    record_fail_on_multiples_of_3,
    record_trivial,
    return_lock_on_5,
    return_unrebuildable_on_3,
    segfault_on_3,
    sigkill_on_3,
    spin_until_released,
    started_items,
    still_running,
    wait_for_release,
    wait_for_starts,
    wait_io,
    wait_until_gone,
)

TESTS_DIR = str(Path(__file__).parent)
#: How long a call may take beyond its deadline before the test calls it late (the
#: promise is 0.5 s; the rest is room for a busy two-core machine).
LATE = 1.5


def _release(path: str) -> None:
    Path(path).touch()


# --- exceptions raised by fn ------------------------------------------------------------


def test_an_exception_carries_a_note_with_a_short_repr_of_its_item(mode: str) -> None:
    long_item = "x" * 500
    items = ["a", "bb", long_item, "ccc", "dddd"]
    with pytest.raises(ValueError, match=r"^too long: 500 characters") as caught:
        ck.run_parallel(fail_on_long, items, mode)
    assert str(caught.value) == "too long: 500 characters"
    notes = [n for n in getattr(caught.value, "__notes__", []) if n.startswith("concurrency_kit")]
    assert notes == [f"concurrency_kit: raised by item 2: {reprlib.repr(long_item)}"]
    assert "..." in notes[0]
    assert len(notes[0]) < 100, "a long item must be abbreviated"


def test_a_process_mode_exception_has_the_worker_traceback_as_its_cause() -> None:
    with pytest.raises(ValueError, match="too long") as caught:
        ck.run_parallel(fail_on_long, ["a", "y" * 30, "b"], "process", workers=2, chunksize=1)
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    text = str(cause)
    assert "Traceback" in text
    assert "fail_on_long" in text, "the worker-side traceback names the function that raised"
    assert "too long: 30 characters" in text


#: Ways to run a call whose items outnumber its workers: (mode, keyword arguments, how
#: many items run at once besides the first).
SIZINGS = {
    "serial": ("serial", {}, 0),
    "thread": ("thread", {"workers": 4, "chunksize": 1}, 3),
    "thread-chunked": ("thread", {"workers": 3, "chunksize": 5}, 2),
    "process": ("process", {"workers": 2, "chunksize": 1}, 1),
    "auto": ("auto", {}, 1),  # the probe's two threads
}


@pytest.mark.parametrize("sizing", SIZINGS)
def test_after_a_failure_nothing_new_starts_and_the_call_does_not_wait(
    sizing: str, calls_dir: str, release: str
) -> None:
    # Item 0 (and the first item the calling thread itself runs) fails once every worker
    # holds an item; every other item blocks until the release file exists, which
    # happens only after the call has returned. A call that waited for them would hit
    # the 60 s test deadline (they give up after 30 s, and the time check would fail).
    mode, kwargs, others = SIZINGS[sizing]
    count = 40
    items = [(calls_dir, i, release, os.getpid(), others) for i in range(count)]
    started = time.monotonic()
    with pytest.raises(HelperError, match="fails at once") as caught:
        ck.run_parallel(fail_first_others_wait, items, mode, **kwargs)
    took = time.monotonic() - started
    ran = calls_per_index(Path(calls_dir))
    assert took < 5, f"the call waited {took:.1f} s for items still running after the failure"
    assert len(ran) <= 8, f"{len(ran)} of {count} items started: work went on after the failure"
    failed = int(str(caught.value).split()[1])
    assert failed in ran
    assert caught.value.__notes__[-1].startswith(f"concurrency_kit: raised by item {failed}: ")
    _release(release)
    ck.shutdown(wait=True)  # the blocked items end; none may start after them
    after = calls_per_index(Path(calls_dir))  # not even those of chunks in a process pool's call queue
    assert after == ran, f"items {sorted(set(after) - set(ran))} started after the failure"
    assert ck.run_parallel(double, range(10), mode, **kwargs) == [2 * x for x in range(10)]


def test_return_exceptions_runs_every_item_and_keeps_each_failure_in_place(mode: str, calls_dir: str) -> None:
    count = 30
    results = ck.run_parallel(
        record_fail_on_multiples_of_3, [(calls_dir, i) for i in range(count)], mode, return_exceptions=True
    )
    assert len(results) == count
    for index, result in enumerate(results):
        if index % 3 == 0:
            assert type(result) is HelperError, (index, result)
            assert str(result) == f"item {index} is a multiple of 3"
        else:
            assert result == index
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(count), 1)


def test_return_exceptions_with_builtin_errors(mode: str) -> None:
    results = ck.run_parallel(fail_on_13, range(20), mode, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 13] == [2 * x for x in range(20) if x != 13]
    assert type(results[13]) is HelperError
    assert str(results[13]) == "item 13 is unlucky"


# --- timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("sizing", ["serial", "thread", "thread-chunked", "auto"])
def test_a_timeout_returns_on_time_though_threads_cannot_be_stopped(sizing: str, calls_dir: str, release: str) -> None:
    # Items wait up to 30 s; the call must give up after 1 s, and start nothing new
    # meanwhile or afterwards ("an item running in a thread finishes in the background,
    # but ... nothing new starts").
    mode, kwargs, _ = SIZINGS[sizing]
    timeout = 1.0
    items = [(calls_dir, i, release) for i in range(20)]
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timeout") as caught:
        ck.run_parallel(wait_for_release, items, mode, timeout=timeout, **kwargs)
    took = time.monotonic() - started
    assert type(caught.value) is TimeoutError
    assert timeout * 0.95 <= took < timeout + LATE, f"took {took:.2f} s with a timeout of {timeout} s"
    ran = set(calls_per_index(Path(calls_dir)))
    _release(release)
    ck.shutdown(wait=True)  # the items running in threads now end; nothing new may start
    after = set(calls_per_index(Path(calls_dir)))
    assert after == ran, f"items {sorted(after - ran)} started after the timeout"
    assert ck.run_parallel(double, range(10), mode, timeout=30, **kwargs) == [2 * x for x in range(10)]


@pytest.mark.parametrize("mode", ["auto", "serial", "thread"])
def test_a_timeout_holds_for_a_single_item(mode: str, calls_dir: str, release: str) -> None:
    # A lone item used to run in the calling thread in auto mode, where no deadline can stop it.
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="timeout"):
        ck.run_parallel(wait_for_release, [(calls_dir, 0, release)], mode, timeout=0.3)
    took = time.monotonic() - started
    assert took < 0.3 + LATE, f"took {took:.2f} s with a timeout of 0.3 s"


def test_a_process_mode_timeout_kills_the_workers_running_the_call(calls_dir: str, release: str) -> None:
    ck.run_parallel(double, range(4), "process", workers=2)  # warm: the items start at once
    timeout = 2.0
    items = [(calls_dir, i, release) for i in range(10)]
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        ck.run_parallel(spin_until_released, items, "process", workers=2, chunksize=1, timeout=timeout)
    took = time.monotonic() - started
    assert took < timeout + LATE, f"took {took:.2f} s with a timeout of {timeout} s"
    ran = started_items(calls_dir)
    pids = {pid for _, pid in ran}
    assert pids, "no item started within the timeout"
    assert len(ran) <= 4, f"{len(ran)} items started"
    # The items spin for 30 s unless released; killed workers stop at once.
    alive = wait_until_gone(pids, 2.0)
    assert not alive, f"worker processes still running their items after the timeout: {alive}"
    results = ck.run_parallel(double, range(10), "process", workers=2)
    assert results == [2 * x for x in range(10)]


@pytest.mark.parametrize("timeout", [0, -1, -0.5, math.nan, -math.inf])
def test_a_timeout_that_is_not_positive_is_a_value_error(mode: str, timeout: float, calls_dir: str) -> None:
    with pytest.raises(ValueError, match="timeout"):
        ck.run_parallel(record_trivial, [(calls_dir, i) for i in range(3)], mode, timeout=timeout)
    assert not os.listdir(calls_dir), "an item ran before the arguments were checked"


@pytest.mark.parametrize("timeout", ["1", True, [1], b"1"])
def test_a_timeout_that_is_not_a_number_is_a_type_error(mode: str, timeout: object, calls_dir: str) -> None:
    with pytest.raises(TypeError, match="timeout"):
        ck.run_parallel(record_trivial, [(calls_dir, i) for i in range(3)], mode, timeout=timeout)
    assert not os.listdir(calls_dir), "an item ran before the arguments were checked"


def test_an_infinite_timeout_means_no_limit(mode: str) -> None:
    # A positive number, so valid by the docs: the call must simply run.
    assert ck.run_parallel(double, range(8), mode, timeout=math.inf) == [2 * x for x in range(8)]


# --- worker processes that die ------------------------------------------------------------

CRASHES = {
    "os._exit": exit_on_3,
    "SIGKILL": sigkill_on_3,
    "segfault": segfault_on_3,
    "faulthandler._sigsegv": faulthandler_sigsegv_on_3,
}


@pytest.mark.parametrize("crash", CRASHES)
def test_a_dead_worker_raises_worker_crashed_error_naming_the_item(crash: str) -> None:
    with pytest.raises(ck.WorkerCrashedError) as caught:
        ck.run_parallel(CRASHES[crash], range(8), "process", workers=2, chunksize=1)
    error = caught.value
    assert isinstance(error, ck.ConcurrencyKitError)
    assert isinstance(error, BrokenProcessPool)
    assert 3 in error.indices
    assert re.search(r"\bitem.*\b3\b", str(error)), str(error)
    assert ck.run_parallel(double, range(8), "process", workers=2) == [2 * x for x in range(8)]


@pytest.mark.parametrize("crash", CRASHES)
def test_with_return_exceptions_only_the_crashing_item_gets_the_error(crash: str) -> None:
    results = ck.run_parallel(CRASHES[crash], range(8), "process", workers=2, chunksize=1, return_exceptions=True)
    assert isinstance(results[3], ck.WorkerCrashedError)
    assert results[3].indices == (3,)
    assert [r for i, r in enumerate(results) if i != 3] == [x for x in range(8) if x != 3]
    assert ck.run_parallel(double, range(8), "process", workers=2) == [2 * x for x in range(8)]


# --- worker processes that die in a stream: only the items at fault fail ----------------------
# 300 items in chunks of 10 on two workers; 4 of them kill their worker (CULPRITS: two in
# one chunk, one first in its chunk). Each crash takes the chunks beside it down too:
# their items must run again one by one, on a fresh pool, and only the culprits fail.


@pytest.mark.parametrize("collect", [True, False])
def test_the_item_a_worker_died_running_is_the_one_at_fault(tmp_path: Path, collect: bool) -> None:  # noqa: FBT001
    # The worker notes the item it runs: the culprit is not run again, the items its
    # chunk ran before it are (their results died with it), those after it run once.
    items = [(str(tmp_path), i) for i in range(40)]
    if not collect:
        with pytest.raises(ck.WorkerCrashedError) as caught:
            ck.run_parallel(record_die_on_13, items, "process", workers=2, chunksize=10)
        assert caught.value.indices == (13,)
        return
    results = ck.run_parallel(record_die_on_13, items, "process", workers=2, chunksize=10, return_exceptions=True)
    assert isinstance(results[13], ck.WorkerCrashedError)
    assert results[13].indices == (13,)
    assert [r for i, r in enumerate(results) if i != 13] == [i for i in range(40) if i != 13]
    calls = calls_per_index(tmp_path)
    assert {i: calls[i] for i in range(10, 20)} == {10: 2, 11: 2, 12: 2, 13: 1, **dict.fromkeys(range(14, 20), 1)}


def _by_index(results: list[object]) -> dict[int, object]:
    """Each result by its item's index (``die_on_culprits`` returns ``-index``; an error names its item)."""
    by_index: dict[int, object] = {}
    for result in results:
        index = result.indices[0] if isinstance(result, ck.WorkerCrashedError) else -result  # type: ignore[operator]
        assert index not in by_index, f"item {index} came twice"
        by_index[index] = result
    return by_index


_STREAMS: dict[str, Callable[[list[int]], list[object]]] = {
    "iter_parallel": lambda items: list(
        ck.iter_parallel(die_on_culprits, items, "process", workers=2, chunksize=10, return_exceptions=True)
    ),
    "iter_parallel over a generator": lambda items: list(
        ck.iter_parallel(die_on_culprits, iter(items), "process", workers=2, chunksize=10, return_exceptions=True)
    ),
    "iter_parallel as finished": lambda items: list(
        ck.iter_parallel(
            die_on_culprits, items, "process", ordered=False, workers=2, chunksize=10, return_exceptions=True
        )
    ),
    "run_parallel with progress": lambda items: ck.run_parallel(
        die_on_culprits,
        items,
        "process",
        workers=2,
        chunksize=10,
        return_exceptions=True,
        progress=lambda *_: None,
    ),
    "run_parallel": lambda items: ck.run_parallel(
        die_on_culprits, items, "process", workers=2, chunksize=10, return_exceptions=True
    ),
}


@pytest.mark.parametrize("call", _STREAMS)
def test_a_worker_dying_in_a_stream_fails_only_its_own_item(call: str) -> None:
    items = list(range(300))
    by_index = _by_index(_STREAMS[call](items))
    failed = sorted(index for index, result in by_index.items() if isinstance(result, BaseException))
    assert failed == list(CULPRITS)
    assert all(by_index[index].indices == (index,) for index in CULPRITS)  # type: ignore[attr-defined]
    assert sorted(by_index) == items
    assert ck.run_parallel(double, range(8), "process", workers=2) == [2 * x for x in range(8)]


@pytest.mark.parametrize("entry", ["iter_parallel", "AutoExecutor.map"])
def test_without_return_exceptions_a_dying_worker_names_the_items_that_were_running(entry: str) -> None:
    results: list[int] = []
    with ck.AutoExecutor(max_workers=2, mode="process") as executor:
        if entry == "iter_parallel":
            stream = ck.iter_parallel(die_on_culprits, range(300), "process", workers=2, chunksize=10)
        else:
            stream = executor.map(die_on_culprits, range(300), chunksize=10)
        with pytest.raises(ck.WorkerCrashedError) as caught:
            results.extend(stream)
        # The window (4 chunks) never reaches item 133 before item 40 is yielded: 40 dies first.
        assert CULPRITS[0] in caught.value.indices
        assert results == [-x for x in range(len(results))]
        assert list(executor.map(double, range(8))) == [2 * x for x in range(8)]  # a fresh pool


class TaskLostError(Exception):
    """What a cluster says of a task whose worker died (as Dask's ``KilledWorker``)."""


class _LosingExecutor(Executor):
    """Runs tasks in threads of its own, and loses each chunk that holds a culprit (its worker "died"); it goes on.

    The items' function never dies: a call through an executor may run its first items here.
    """

    def __init__(self) -> None:
        self._threads = ThreadPoolExecutor(2)

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future[object]:
        if fn is run_pickled_chunk and set(pickle.loads(args[0])[2]) & set(CULPRITS):  # type: ignore[arg-type]
            lost: Future[object] = Future()
            lost.set_exception(TaskLostError("the worker running this task died"))
            return lost
        return self._threads.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:  # noqa: FBT001, FBT002
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)


@pytest.mark.parametrize("entry", ["run_parallel", "iter_parallel"])
def test_a_task_an_executor_loses_fails_only_the_item_at_fault(entry: str) -> None:
    items = list(range(300))
    # With a timeout, no item is timed here first: every chunk of 10 is a task.
    options: dict[str, Any] = {"executor": None, "chunksize": 10, "return_exceptions": True, "timeout": 60}
    with _LosingExecutor() as executor:
        options["executor"] = executor
        if entry == "run_parallel":
            results = ck.run_parallel(negate, items, **options)
        else:
            results = list(ck.iter_parallel(negate, items, **options))
    failed = [index for index, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == list(CULPRITS)
    assert all(isinstance(results[index], TaskLostError) for index in CULPRITS)
    assert [result for index, result in enumerate(results) if index not in CULPRITS] == [
        -index for index in items if index not in CULPRITS
    ]


# --- Ctrl-C ----------------------------------------------------------------------------------

_CTRL_C_SCRIPT = """\
import sys

import concurrency_kit as ck
from helpers import spin_until_released, wait_for_release


def main():
    directory, release, mode = sys.argv[1:4]
    workers, chunksize = int(sys.argv[4]), int(sys.argv[5])
    fn = spin_until_released if mode == "process" else wait_for_release
    items = [(directory, i, release) for i in range(40)]
    try:
        ck.run_parallel(fn, items, mode, workers=workers, chunksize=chunksize)
    except KeyboardInterrupt:
        if mode == "thread":
            open(release, "w").close()  # threads cannot be stopped: let the running items end
        raise
    print("the call finished without being interrupted")


if __name__ == "__main__":
    main()
"""


def _interrupt_child(
    tmp_path: Path, mode: str, workers: int, chunksize: int = 1, *, group: bool
) -> tuple[str, set[int], float, str]:
    """Run a long call in a child, interrupt it once ``workers`` items run; wait for its exit.

    Returns:
        The child's stderr, every process the child had started, the seconds from
        SIGINT to the child's exit, and the directory where items recorded their start.
    """
    script = tmp_path / "interrupted.py"
    script.write_text(_CTRL_C_SCRIPT)
    directory = tmp_path / "started"
    directory.mkdir()
    release = str(tmp_path / "release")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, str(script), str(directory), release, mode, str(workers), str(chunksize)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a program in a terminal has
    )
    descendants: set[int] = set()
    try:
        wait_for_starts(str(directory), workers, child=child)
        descendants = {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
        sent = time.monotonic()
        if group:
            os.killpg(child.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        else:
            os.kill(child.pid, signal.SIGINT)  # kill -INT: the main process only
        try:
            _, err = child.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the child did not exit within 20 s of SIGINT")
        return err, descendants, time.monotonic() - sent, str(directory)
    finally:
        _release(release)
        if child.poll() is None:
            child.kill()
            child.communicate()
        for pid in still_running(descendants):  # only what this test started, so nothing leaks
            psutil.Process(pid).kill()


@pytest.mark.parametrize("target", ["group", "main"], ids=["ctrl-c-to-the-group", "sigint-to-the-main-process"])
def test_ctrl_c_in_process_mode_exits_promptly_and_leaves_no_orphan_workers(tmp_path: Path, target: str) -> None:
    err, descendants, took, directory = _interrupt_child(tmp_path, "process", 2, group=target == "group")
    assert "KeyboardInterrupt" in err, err
    assert took < 5, f"the child took {took:.1f} s to exit after SIGINT"
    workers = {pid for _, pid in started_items(directory)}
    assert workers <= descendants
    alive = wait_until_gone(descendants, 3.0)
    assert not alive, f"processes of the interrupted child still running: {alive}"
    assert len(started_items(directory)) <= 8, "queued items went on starting after Ctrl-C"


@pytest.mark.parametrize("chunksize", [1, 5])
def test_ctrl_c_in_thread_mode_returns_promptly_and_starts_no_queued_item(tmp_path: Path, chunksize: int) -> None:
    workers = 4 if chunksize == 1 else 2
    err, _, took, directory = _interrupt_child(tmp_path, "thread", workers, chunksize, group=True)
    assert "KeyboardInterrupt" in err, err
    assert took < 5, f"the child took {took:.1f} s to exit after SIGINT"
    # The child released the running items after the interrupt (its threads cannot be
    # stopped); no other item may have started then, whether queued or in a chunk.
    started = sorted(index for index, _ in started_items(directory))
    assert len(started) == workers, f"items started: {started}"


# --- things that cannot be pickled ----------------------------------------------------------


def _make_closure():
    offset = 1

    def add_offset(x: int) -> int:
        return x + offset

    return add_offset


@pytest.mark.usefixtures("without_cloudpickle")
@pytest.mark.parametrize(
    ("fn", "name"),
    [(lambda x: x, "<lambda>"), (_make_closure(), "add_offset")],
    ids=["lambda", "closure"],
)
def test_forced_process_mode_with_an_unpicklable_function_says_what_and_how_to_fix(fn: object, name: str) -> None:
    started = time.monotonic()
    with pytest.raises(ck.UnpicklableTaskError) as caught:
        ck.run_parallel(fn, range(10), "process")
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert isinstance(caught.value, ck.ConcurrencyKitError)
    assert isinstance(caught.value, TypeError)
    assert name in message
    assert "module level" in message
    assert "mode='thread'" in message
    assert "concurrency_kit[cloudpickle]" in message
    assert ck.run_parallel(double, range(6), "process") == [2 * x for x in range(6)]


@pytest.mark.parametrize("chunksize", [1, None])
def test_forced_process_mode_with_an_open_file_item_names_the_item(tmp_path: Path, chunksize: int | None) -> None:
    path = tmp_path / "data.txt"
    path.write_text("data")
    started = time.monotonic()
    with path.open() as handle:
        items = [1, 2, handle, 4, 5, 6, 7, 8]
        with pytest.raises(ck.UnpicklableTaskError) as caught:
            ck.run_parallel(str, items, "process", workers=2, chunksize=chunksize)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "item 2" in message
    assert "TextIOWrapper" in message
    assert "mode='thread'" in message
    assert ck.run_parallel(double, range(6), "process") == [2 * x for x in range(6)]


def test_an_unpicklable_result_names_its_item() -> None:
    with pytest.raises(ck.UnpicklableTaskError) as caught:
        ck.run_parallel(return_lock_on_5, range(10), "process", workers=2, chunksize=3)
    assert "item 5" in str(caught.value)
    assert "result" in str(caught.value)
    assert ck.run_parallel(double, range(6), "process") == [2 * x for x in range(6)]


def test_with_return_exceptions_an_unpicklable_result_takes_its_items_place() -> None:
    results = ck.run_parallel(return_lock_on_5, range(10), "process", workers=2, chunksize=3, return_exceptions=True)
    assert isinstance(results[5], ck.UnpicklableTaskError)
    assert "item 5" in str(results[5])
    assert [r for i, r in enumerate(results) if i != 5] == [x for x in range(10) if x != 5]


@pytest.mark.parametrize("fn", [raise_unrebuildable_on_3, return_unrebuildable_on_3], ids=["raised", "returned"])
def test_an_outcome_that_cannot_be_unpickled_in_the_caller_names_its_item(fn: object) -> None:
    # TwoArgumentError pickles in the worker, but unpickling calls TwoArgumentError(msg)
    # and fails: the error must still say which item it was, as for an unpicklable one.
    with pytest.raises(ck.UnpicklableTaskError) as caught:
        ck.run_parallel(fn, range(8), "process", workers=2, chunksize=1)
    text = "\n".join([str(caught.value), *getattr(caught.value, "__notes__", [])])
    assert "item 3" in text, text
    assert ck.run_parallel(double, range(6), "process") == [2 * x for x in range(6)]


@pytest.mark.parametrize("fn", [raise_unrebuildable_on_3, return_unrebuildable_on_3], ids=["raised", "returned"])
def test_with_return_exceptions_an_outcome_that_cannot_be_unpickled_takes_its_items_place(fn: object) -> None:
    results = ck.run_parallel(fn, range(8), "process", workers=2, chunksize=1, return_exceptions=True)
    assert isinstance(results[3], Exception)
    assert not isinstance(results[3], TwoArgumentError)
    assert [r for i, r in enumerate(results) if i != 3] == [x for x in range(8) if x != 3]


def test_auto_falls_back_when_a_later_item_is_an_open_file(tmp_path: Path) -> None:
    from concurrency_kit.tasks import SEED_NUMBERS

    path = tmp_path / "passenger.txt"
    path.write_text("data")
    with path.open() as handle:
        items = [(n, None) for n in SEED_NUMBERS * 2]
        items[5] = (items[5][0], handle)
        # Declared CPU-bound, so auto wants processes; item 5 cannot go to one.
        results = ck.run_parallel(factorize_first, items, classifier=lambda _fn, _sample: "cpu")
    assert [r[-1] for r in results] == [n for n, _ in items]


# --- many callers at once -----------------------------------------------------------------


def _outcome(value: object) -> object:
    return (type(value), str(value)) if isinstance(value, BaseException) else value


CONCURRENT_CALLS = [
    # (mode, fn, items, keyword arguments): several process calls with different worker
    # counts (the shared pool grows while others use it), a thread call that makes the
    # shared thread pool grow, and failures kept in place.
    ("serial", double, list(range(50)), {}),
    ("thread", wait_io, list(range(20)), {}),
    ("process", double, list(range(40)), {"workers": 1, "chunksize": 1}),
    ("auto", double, list(range(300)), {}),
    ("process", factorize_first, [(n, None) for n in range(1000, 1040)], {"workers": 2, "chunksize": 1}),
    ("thread", fail_on_13, list(range(30)), {"workers": 70, "return_exceptions": True}),
    ("auto", wait_io, list(range(10)), {}),
    ("process", fail_on_13, list(range(30)), {"workers": 3, "chunksize": 1, "return_exceptions": True}),
]


def test_eight_threads_sharing_the_warm_pools_each_get_their_own_results() -> None:
    expected = [
        [_outcome(v) for v in ck.run_parallel(fn, items, "serial", return_exceptions=True)]
        for _, fn, items, _ in CONCURRENT_CALLS
    ]
    for _ in range(2):
        barrier = threading.Barrier(len(CONCURRENT_CALLS))
        results: dict[int, object] = {}

        def caller(k: int, barrier: threading.Barrier = barrier, results: dict[int, object] = results) -> None:
            mode, fn, items, kwargs = CONCURRENT_CALLS[k]
            barrier.wait()
            try:
                results[k] = [_outcome(v) for v in ck.run_parallel(fn, items, mode, **kwargs)]
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                results[k] = exc

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(len(CONCURRENT_CALLS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for k, (mode, fn, _, kwargs) in enumerate(CONCURRENT_CALLS):
            assert results[k] == expected[k], f"call {k} ({mode}, {fn.__name__}, {kwargs}): {results[k]!r}"


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Start ``call`` in a thread; its result (or exception) lands in the returned dict."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's assertion
            outcome["value"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_a_call_goes_on_when_another_call_grows_the_shared_process_pool(tmp_path: Path, release: str) -> None:
    # The first call runs on a one-worker pool and has more chunks to send; a second call
    # asks for two workers, which replaces the shared pool, while the first one's item
    # is still running there. The first call must still send its remaining items.
    directory = str(tmp_path / "first")
    os.mkdir(directory)
    items = [(directory, i, release) for i in range(6)]
    thread, outcome = _in_thread(lambda: ck.run_parallel(wait_for_release, items, "process", workers=1, chunksize=1))
    try:
        wait_for_starts(directory, 1)
        assert ck.run_parallel(double, range(4), "process", workers=2) == [0, 2, 4, 6]
    finally:
        _release(release)
        thread.join()
    assert outcome["value"] == list(range(6))


def test_a_timeout_stops_only_the_workers_of_its_own_call(tmp_path: Path, release: str) -> None:
    # Two calls share a warm two-worker pool: the first runs one long item, the second
    # times out. A ProcessPoolExecutor breaks when any worker dies, so the timeout kills
    # the whole shared pool; the first call must not see an error but send its lost
    # item again to a fresh pool and end normally once released.
    ck.run_parallel(double, range(4), "process", workers=2)
    first_dir, second_dir = str(tmp_path / "first"), str(tmp_path / "second")
    os.mkdir(first_dir)
    os.mkdir(second_dir)
    thread, outcome = _in_thread(
        lambda: ck.run_parallel(wait_for_release, [(first_dir, 0, release)], "process", workers=1)
    )
    try:
        wait_for_starts(first_dir, 1)
        second = [(second_dir, i, release) for i in range(2)]
        with pytest.raises(TimeoutError):
            ck.run_parallel(wait_for_release, second, "process", workers=1, timeout=1.0)
    finally:
        _release(release)
        thread.join()
    assert outcome["value"] == [0], f"the other call's outcome: {outcome['value']!r}"


# --- bad input ----------------------------------------------------------------------------------


def test_an_items_generator_that_raises_surfaces_even_with_return_exceptions(mode: str) -> None:
    # Its error is not fn's: it is raised, not returned in a place.
    with pytest.raises(LookupError, match="ran out badly"):
        ck.run_parallel(double, generate_then_fail(10), mode, return_exceptions=True)


def test_an_items_generator_that_raises_with_a_timeout_does_not_hang(mode: str) -> None:
    started = time.monotonic()
    with pytest.raises(LookupError):
        ck.run_parallel(double, generate_then_fail(10), mode, timeout=5)
    assert time.monotonic() - started < 5


# --- the errors themselves ------------------------------------------------------------------------


def test_the_error_hierarchy() -> None:
    assert issubclass(ck.UnpicklableTaskError, ck.ConcurrencyKitError)
    assert issubclass(ck.UnpicklableTaskError, TypeError)
    assert issubclass(ck.WorkerCrashedError, ck.ConcurrencyKitError)
    assert issubclass(ck.WorkerCrashedError, BrokenProcessPool)
    assert issubclass(ck.ConcurrencyKitError, Exception)
    from concurrency_kit import WorkerCrashedError

    assert WorkerCrashedError is ck.WorkerCrashedError


def test_worker_crashed_error_pickles_with_its_indices() -> None:
    error = ck.WorkerCrashedError("a worker process died while running item(s) 3, 4", (3, 4))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ck.WorkerCrashedError
    assert (str(copy), copy.indices) == (str(error), (3, 4))


def test_importing_the_package_does_not_import_multiprocessing() -> None:
    code = (
        "import sys\n"
        "import concurrency_kit as ck\n"
        "assert 'multiprocessing' not in sys.modules, 'imported with the package'\n"
        "ck.WorkerCrashedError\n"
        "assert 'multiprocessing' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("failing", [0, 15, 16, 1_000, 19_999])
@pytest.mark.parametrize("mode", ["serial", "auto"])
def test_a_failure_deep_in_a_loop_names_its_item_and_stops_there(mode: str, failing: int) -> None:
    # The calling thread's loop runs spans as list comprehensions; the item that raised
    # is found from the span's iterator, and nothing after it runs.
    calls: list[int] = []

    def record_or_fail(x: int) -> int:
        calls.append(x)
        if x == failing:
            raise HelperError(f"item {x} fails")
        return x

    with pytest.raises(HelperError) as caught:
        ck.run_parallel(record_or_fail, range(20_000), mode)
    assert caught.value.__notes__ == [f"concurrency_kit: raised by item {failing}: {failing}"]
    if mode == "serial":
        assert calls == list(range(failing + 1))
    else:  # the probe's two threads may each have had a batch under way
        assert failing in calls
        assert len(calls) == len(set(calls))


def test_a_timeout_holds_where_auto_would_try_items_in_the_calling_thread(calls_dir: str, release: str) -> None:
    # A long input, and work remembered as tiny, are first tried in the calling thread,
    # where an item could not be left behind at the timeout: with a timeout they are not.
    waiting = threading.Event()

    def tiny_or_waiting(item: tuple[str, int, str]) -> int:
        return wait_for_release(item) if waiting.is_set() else item[1]

    # Under the old fixed cap: 640 items, as many threads as a call may then get (items
    # that poll for the release file every 5 ms, by the hundred, would slow the test down).
    ck.configure(max_io_workers=64)
    count = _measuring.POLICY.long_input * ck.get_config().io_thread_cap()
    for size in (count, 100):
        waiting.clear()
        ck.run_parallel(tiny_or_waiting, [(calls_dir, i, release) for i in range(size)])  # remembered as tiny
        if size == count:
            ck.shutdown()  # the long input alone, nothing remembered
        waiting.set()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="timeout"):
            ck.run_parallel(tiny_or_waiting, [(calls_dir, i, release) for i in range(size)], timeout=1.0)
        took = time.monotonic() - started
        assert took < 1.0 + LATE, f"took {took:.2f} s with a timeout of 1 s ({size} items)"
    _release(release)
    ck.shutdown(wait=True)
