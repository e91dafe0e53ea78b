"""Pipelines: building, running in every mode, order, bounds, errors, closing, the report.

Every test runs under the conftest's deadline and its check that no thread or child
process is left behind.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import concurrency_kit as ck
from helpers import wait_for_path
from pipeline_helpers import (
    Counted,
    StageError,
    async_double,
    async_inc,
    below_3,
    double,
    fail_at_10,
    fail_negative,
    fail_on_even_tens,
    jitter,
    jitter_keep,
    jitter_spread,
    not_multiple_of_3,
    pair,
    same,
    spin_again_ms,
    spin_fail_odd_ms,
    spin_ms,
    spin_once_ms,
    spin_pair_ms,
    spin_triple_ms,
    wait_ms,
)

MODES = ("auto", "serial", "thread", "process")


def sequential(items: range) -> list[object]:
    """What ``map(double).filter(not_multiple_of_3).flat_map(pair).batch(4)`` gives, computed plainly."""
    flat = [y for x in items if not_multiple_of_3(double(x)) for y in pair(double(x))]
    return [flat[i : i + 4] for i in range(0, len(flat), 4)]


def chain_of(source: object, mode: str = "auto") -> ck.Pipeline[list[int]]:
    return (
        ck.pipeline(source)  # type: ignore[arg-type]
        .map(double, mode)  # type: ignore[arg-type]
        .filter(not_multiple_of_3, mode)  # type: ignore[arg-type]
        .flat_map(pair, mode)  # type: ignore[arg-type]
        .batch(4)
    )


# Building.


def test_builder_methods_return_new_pipelines() -> None:
    base = ck.pipeline(range(5))
    doubled = base.map(double)
    assert base.run() == [0, 1, 2, 3, 4]
    assert doubled.run() == [0, 2, 4, 6, 8]
    assert [stage.name for stage in doubled.report().stages] == ["double"]


def test_stage_names_default_to_the_function_and_stay_unique() -> None:
    p = ck.pipeline(range(3)).map(double).map(double).map(double, name="third").batch(2)
    assert [stage.name for stage in p.report().stages] == ["double", "double-2", "third", "batch(2)"]


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: ck.pipeline(3), TypeError),  # type: ignore[arg-type]
        (lambda: ck.pipeline([1]).map(double, "threads"), ValueError),  # type: ignore[arg-type]
        (lambda: ck.pipeline([1]).map(double, workers=0), ValueError),
        (lambda: ck.pipeline([1]).map(double, colour="red"), TypeError),  # type: ignore[call-arg]
        (lambda: ck.pipeline([1]).map(42), TypeError),  # type: ignore[arg-type]
        (lambda: ck.pipeline([1]).batch(0), ValueError),
        (lambda: ck.pipeline([1]).map(double, mode="serial", task_timeout=1.0), ValueError),
        (lambda: ck.pipeline([1]).batch(10).run(max_in_flight=5), ValueError),
        (lambda: ck.pipeline([1]).run(timeout=-1), ValueError),
        (lambda: ck.pipeline([1]).run(progress="yes"), TypeError),
    ],
)
def test_bad_arguments_are_refused_at_once(build: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()  # type: ignore[operator]


def test_a_one_shot_source_cannot_run_twice_a_list_can() -> None:
    once = ck.pipeline(iter(range(4))).map(double)
    assert once.run() == [0, 2, 4, 6]
    with pytest.raises(RuntimeError, match="one-shot"):
        once.run()
    again = ck.pipeline(range(4)).map(double)
    assert again.run() == again.run() == [0, 2, 4, 6]


# Running.


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_sequential_result(mode: str) -> None:
    assert chain_of(range(200), mode).run() == sequential(range(200))


@pytest.mark.parametrize("mode", MODES)
def test_an_unsized_source_gives_the_same(mode: str) -> None:
    assert list(chain_of(iter(range(150)), mode)) == sequential(range(150))


def test_a_coroutine_stage_and_an_async_source() -> None:
    async def numbers() -> AsyncIterator[int]:
        for x in range(50):
            yield x

    p = ck.pipeline(numbers()).map(async_double).map(double, mode="thread").map(async_inc)
    assert p.run() == [4 * x + 1 for x in range(50)]
    assert [stage.mode for stage in p.report().stages] == ["async", "thread", "async"]


@pytest.mark.parametrize("run", range(20))  # 20 runs, each under its own deadline and leak check
def test_mixed_kinds_in_one_pipeline(run: int) -> None:
    p = (
        ck.pipeline(range(10_000))
        .map(async_inc)
        .map(double, mode="thread", workers=3)
        .map(double, mode="process", workers=2)
        .map(async_inc)
    )
    assert p.run() == [4 * (x + 1) + 1 for x in range(10_000)], f"run {run}"


def test_order_holds_through_filter_and_flat_map() -> None:
    items = range(300)
    expected = [y for x in items if jitter_keep(x) for y in jitter_spread(x)]
    for _ in range(50):
        p = ck.pipeline(items).map(jitter, mode="thread", workers=4)
        p = p.filter(jitter_keep, mode="thread", workers=4).flat_map(jitter_spread, mode="thread", workers=3)
        assert p.run() == expected


def test_unordered_gives_every_result() -> None:
    p = ck.pipeline(range(300)).map(jitter, mode="thread", workers=4).filter(jitter_keep, mode="thread")
    assert sorted(p.run(ordered=False)) == [x for x in range(300) if jitter_keep(x)]


def test_the_in_flight_bound_holds_with_a_slow_consumer() -> None:
    source = Counted()  # endless
    bound = 16
    p = ck.pipeline(source).map(double, mode="thread", workers=2).flat_map(pair, mode="serial").map(double, "process")
    seen = 0
    with p.stream(max_in_flight=bound) as results:
        for _ in results:
            seen += 1
            time.sleep(0.001)  # a slow consumer: the pipeline must wait for it
            # Items taken and not yet yielded: a source item is yielded once both its halves are.
            assert source.taken - seen // 2 <= bound + 1
            if seen == 400:
                break
    assert source.closed.wait(5)


# Errors.


@pytest.mark.parametrize("middle", ["thread", "process"])
def test_the_last_stage_failing_behind_full_queues_ends_the_run(middle: str) -> None:
    source = Counted()  # endless: only the failure ends it
    p = ck.pipeline(source).map(same, "thread").map(same, middle).map(fail_at_10, "serial")
    began = time.monotonic()
    with pytest.raises(StageError, match="failed at 10") as caught:
        p.run(max_in_flight=4)
    assert time.monotonic() - began < 10  # the figure (well under 1 s) is in benchmarks/README
    assert "concurrency_kit: in pipeline stage 'fail_at_10', from source item 10" in caught.value.__notes__
    assert not any("raised by item" in note for note in caught.value.__notes__)
    assert source.closed.wait(5)


def test_the_source_failing_ends_the_run() -> None:
    source = Counted(fail_at=7)
    with pytest.raises(StageError, match="source failed at 7") as caught:
        ck.pipeline(source).map(double, "thread").run()
    assert any("source" in note and "7" in note for note in caught.value.__notes__)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("count", [4, 10, 10_000])
def test_a_failure_is_never_swallowed(mode: str, count: int) -> None:
    last = count - 1

    p = ck.pipeline(range(count)).map(double, mode).map(_fail_at(2 * last), mode if mode != "process" else "thread")
    with pytest.raises(StageError):
        p.run()


def _fail_at(value: int):  # type: ignore[no-untyped-def]
    def stage(x: int) -> int:
        if x == value:
            raise StageError(f"failed at {x}")
        return x

    return stage


def test_return_exceptions_puts_the_failure_in_place_past_later_stages() -> None:
    p = ck.pipeline(range(60)).map(fail_on_even_tens, "thread").map(double, "process").filter(not_multiple_of_3)
    results = p.run(return_exceptions=True)
    expected: list[object] = []
    for x in range(60):
        if x % 20 == 0:
            expected.append(StageError)
        elif not_multiple_of_3(2 * x):
            expected.append(2 * x)
    assert [type(r) if isinstance(r, Exception) else r for r in results] == expected
    failure = results[0]
    assert isinstance(failure, StageError)
    assert "concurrency_kit: in pipeline stage 'fail_on_even_tens', from source item 0" in failure.__notes__


def test_a_task_timeout_in_a_stage_names_its_source_item() -> None:
    p = ck.pipeline(range(6)).filter(not_multiple_of_3, "serial").map(wait_ms(2000), "thread", task_timeout=0.2)
    with pytest.raises(ck.TaskTimeoutError) as caught:
        p.run()
    assert any("from source item 1" in note for note in caught.value.__notes__)


# Closing.


@pytest.mark.parametrize("how", ["break", "close", "with", "drop"])
def test_closing_early_stops_everything_and_closes_the_source(how: str) -> None:
    source = Counted()
    p = ck.pipeline(source).map(double, "thread").map(double, "process").map(double, "serial")
    stream = p.stream()
    if how == "with":
        with stream as results:
            next(results)
    elif how == "break":
        for _ in stream:
            break
        stream.close()  # a for loop leaves the iterator open: the stream is dropped or closed
    elif how == "close":
        next(stream)
        stream.close()
    else:
        next(stream)
        del stream
    assert source.closed.wait(5)
    again = ck.pipeline(range(5)).map(double, "process")
    assert again.run() == [0, 2, 4, 6, 8]


def test_a_timeout_stops_the_run() -> None:
    source = Counted()
    p = ck.pipeline(source).map(wait_ms(5), "thread", workers=2)
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="pipeline"):
        p.run(timeout=0.3)
    assert time.monotonic() - began < 10
    assert source.closed.wait(5)


# Progress and the report.


def test_progress_is_told_per_stage_in_the_consumers_thread() -> None:
    told: list[tuple[str, int, int | None, threading.Thread]] = []

    def progress(stage: str, done: int, total: int | None) -> None:
        told.append((stage, done, total, threading.current_thread()))

    ck.pipeline(range(40)).map(double, "thread").filter(not_multiple_of_3).run(progress=progress)
    assert {thread for *_, thread in told} == {threading.current_thread()}
    last = {stage: (done, total) for stage, done, total, _ in told}
    assert last == {"double": (40, 40), "not_multiple_of_3": (40, 40)}  # a filter's input is its map's output


def test_the_report_names_the_bottleneck() -> None:
    p = (
        ck.pipeline(range(40))
        .map(wait_ms(1), "thread", workers=1, name="before")
        .map(wait_ms(50), "thread", workers=1, name="slow")
        .map(wait_ms(1), "thread", workers=1, name="after")
    )
    assert p.run(max_in_flight=8) == list(range(40))
    report = p.report()
    assert report.bottleneck == "slow"
    before, slow, after = report.stages
    assert before.blocked > before.busy + before.waiting
    assert after.waiting > after.busy + after.blocked
    assert (before.items_in, slow.items_out, after.items_out) == (40, 40, 40)
    assert "slow" in str(report)
    assert slow.mode == "thread"
    assert slow.workers == 1


def test_the_report_is_readable_during_a_run() -> None:
    p = ck.pipeline(itertools.count()).map(double, "thread")
    with p.stream() as results:
        for seen, _ in enumerate(results):
            if seen == 100:
                report = p.report()
                break
    assert report.stages[0].items_out >= 100
    assert report.seconds > 0


def test_arun_and_astream_inside_an_event_loop() -> None:
    async def main() -> tuple[list[int], list[int]]:
        p = ck.pipeline(range(30)).map(double, "thread").map(async_inc)
        listed = await p.arun()
        streamed = [x async for x in p.astream(ordered=True)]
        return listed, streamed

    listed, streamed = asyncio.run(main())
    assert listed == streamed == [2 * x + 1 for x in range(30)]


# Fusion.


def test_cheap_stages_run_in_the_consumers_thread() -> None:
    before = threading.active_count()
    p = ck.pipeline(range(5000)).map(double).filter(not_multiple_of_3).flat_map(pair)
    counts = []
    for seen, _ in enumerate(p):
        if seen % 1000 == 0:
            counts.append(threading.active_count())
    assert set(counts) == {before}
    report = p.report()
    assert {stage.mode for stage in report.stages} == {"inline"}
    assert report.stages[0].items_in == 5000
    assert report.stages[2].items_out == 2 * len([x for x in range(5000) if not_multiple_of_3(2 * x)])


@pytest.mark.parametrize("at", [5, 500])  # on the pass, and in the chain after it
def test_a_failure_in_an_inline_pipeline_names_its_stage_and_item(at: int) -> None:
    failing = _fail_at(at)
    failing.__name__ = "failing"
    with pytest.raises(StageError) as caught:
        ck.pipeline(range(1000)).map(same).map(failing).map(double).run()
    assert f"concurrency_kit: in pipeline stage 'failing', from source item {at}" in caught.value.__notes__


def test_return_exceptions_in_an_inline_pipeline() -> None:
    results = ck.pipeline(range(100)).map(fail_on_even_tens).map(double).run(return_exceptions=True)
    assert [isinstance(r, StageError) for r in results] == [x % 20 == 0 for x in range(100)]
    assert [r for r in results if not isinstance(r, Exception)] == [2 * x for x in range(100) if x % 20]


def test_return_exceptions_in_an_inline_pipeline_takes_only_the_failing_items_place() -> None:
    # Inline on a quiet machine (every stage cheaper than a hop); the same outcome however it runs.
    p = ck.pipeline(range(100)).flat_map(pair).map(fail_negative)
    results = p.run(return_exceptions=True)
    assert [r if isinstance(r, int) else type(r) for r in results] == [
        y if y >= 0 else StageError for x in range(100) for y in pair(x)
    ]


def test_a_cheap_stage_joins_its_dear_neighbour() -> None:
    # Half a millisecond: dearer than a hop, not so dear that the pass stops at the first
    # item; each stage is judged on the median of the pass's items.
    p = ck.pipeline(range(60)).map(same).map(wait_ms(0.5)).map(double)
    assert p.run() == [2 * x for x in range(60)]
    assert p.report().fused == [("same", "wait_0.5ms", "double")]


def test_two_computing_stages_fuse() -> None:
    p = ck.pipeline([3] * 24).map(spin_ms).map(spin_again_ms)
    assert p.run() == [3] * 24  # timed on the pass: both keep their thread's CPU busy
    assert p.report().fused == [("spin_ms", "spin_again_ms")]
    assert p.run() == [3] * 24  # remembered as computing now: no pass
    assert p.report().fused == [("spin_ms", "spin_again_ms")]


def test_a_waiting_stage_does_not_fuse_with_a_computing_one() -> None:
    p = ck.pipeline([3] * 24).map(wait_ms(3)).map(spin_ms)
    assert p.run() == [3] * 24
    assert p.report().fused == []


def test_fused_stages_each_have_their_own_record() -> None:
    p = ck.pipeline([2, 3] * 12).filter(below_3).map(spin_once_ms).map(spin_triple_ms)
    assert p.run() == [2] * 12
    report = p.report()
    assert len(report.fused) == 1
    assert report.fused[0][-2:] == ("spin_once_ms", "spin_triple_ms")  # the cheap filter joins them on a quiet machine
    _, once, thrice = report.stages
    assert [(s.items_in, s.items_out) for s in report.stages] == [(24, 12), (12, 12), (12, 12)]
    assert once.mode == thrice.mode
    assert thrice.busy > 1.5 * once.busy > 0  # each stage's share of the group's busy time: its calls' (3 to 1)
    assert report.bottleneck == "spin_triple_ms"


def test_fused_stages_are_known_to_the_next_pipeline_built_of_them() -> None:
    for _ in range(2):  # a pipeline built afresh each time, as a function that runs one would
        p = ck.pipeline([2] * 12).map(spin_once_ms).map(spin_triple_ms)
        assert p.run() == [2] * 12
        assert p.report().fused == [("spin_once_ms", "spin_triple_ms")]
    assert "what an earlier call measured" in p.report().stages[0].reason


@pytest.mark.parametrize("mode", ["auto", "thread"])  # a stage with a mode of its own does not fuse
def test_a_failure_inside_fused_stages_takes_only_its_items_place(mode: str) -> None:
    p = ck.pipeline([2] * 8).flat_map(spin_pair_ms, mode).map(spin_fail_odd_ms, mode)
    results = p.run(return_exceptions=True)
    assert p.report().fused == ([("spin_pair_ms", "spin_fail_odd_ms")] if mode == "auto" else [])
    assert [r if isinstance(r, int) else type(r) for r in results] == [2, StageError] * 8
    notes = [note for r in results if isinstance(r, StageError) for note in r.__notes__]
    assert all("pipeline stage 'spin_fail_odd_ms'" in note for note in notes if "pipeline" in note)


def test_closing_stops_a_coroutine_stage_at_once() -> None:
    cancelled = threading.Event()

    waiting = threading.Event()

    async def forever(x: int) -> int:
        if x == 0:
            return x
        try:
            waiting.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    stream = ck.pipeline(range(10)).map(double, "thread").map(forever).stream()
    assert next(stream) == 0
    assert waiting.wait(10)  # a coroutine is under way
    began = time.monotonic()
    stream.close()
    assert time.monotonic() - began < 10  # under a second here; a deadlock guard only
    assert cancelled.is_set()


def test_ctrl_c_in_a_script_stops_the_pipeline(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    ready = tmp_path / "ready"
    script.write_text(
        textwrap.dedent(
            f"""
            import itertools, pathlib, sys, time
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import concurrency_kit as ck
            from pipeline_helpers import double, same

            if __name__ == "__main__":
                p = ck.pipeline(itertools.count()).map(same, "thread").map(double, "process")
                try:
                    for n, _ in enumerate(p):
                        if n == 100:
                            pathlib.Path({str(ready)!r}).touch()
                        time.sleep(0.001)
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
            """
        )
    )
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert wait_for_path(str(ready)), "the pipeline did not start"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0
    assert "interrupted" in out


def test_progress_bars_one_a_stage(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm

    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # tqdm's own monitor thread would outlive the test
    assert ck.pipeline(range(30)).map(double, "thread").map(same, "thread").run(progress=True) == [
        2 * x for x in range(30)
    ]
    err = capsys.readouterr().err
    assert "double (thread)" in err
    assert "same (thread)" in err
    assert "30/30" in err


@pytest.mark.parametrize("bound", [2, 256])
def test_items_the_pass_left_part_way_go_on_from_there(bound: int) -> None:
    # The first item stops after the second dear stage (past the pass's few milliseconds),
    # before ``double``, which is fused after it: it is finished where it stopped, once.
    calls: list[int] = []

    def counted(x: int) -> int:
        calls.append(x)
        return x

    p = ck.pipeline(range(20)).map(counted).map(wait_ms(3)).map(wait_ms(4)).map(double)
    assert p.run(max_in_flight=bound) == [2 * x for x in range(20)]
    assert sorted(calls) == list(range(20))  # each item ran once
