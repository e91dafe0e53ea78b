"""Properties of the cost model (_choose.choose, _sizing.forced_choice) and the classifier chain.

The model's machine figures are passed in: the forkserver's starting values where a test quotes a
figure, every start method's where a property must hold whatever the figures.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import assume, example, given
from hypothesis import strategies as st

from concurrency_kit import TaskKind
from concurrency_kit._core.costmodel import STARTING, starting_model
from concurrency_kit._decide import classify as _classify
from concurrency_kit._decide.choose import choose
from concurrency_kit._decide.sizing import forced_choice, io_threads

#: The figures the quoted estimates are made of.
FORKSERVER = starting_model("forkserver")
THREAD_START = FORKSERVER.thread_start

kinds = st.sampled_from(list(TaskKind))
item_seconds = st.floats(min_value=1e-8, max_value=100.0, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=1_000_000)
cpus = st.integers(min_value=1, max_value=256)
optional_count = st.none() | st.integers(min_value=1, max_value=1024)

choices = st.fixed_dictionaries(
    {
        "kind": kinds,
        "item_seconds": item_seconds,
        "count": counts,
        "cpus": cpus,
        "io_cap": st.integers(min_value=1, max_value=1024),
        "unpicklable": st.none() | st.just("fn cannot be pickled"),
        "process_age": st.none() | st.floats(min_value=0.0, max_value=1e4),
        "bytes_per_item": st.integers(min_value=0, max_value=10**8),
        "workers": optional_count,
        "chunksize": optional_count,
        "model": st.sampled_from(list(STARTING.values())),
    }
)


@given(choices)
def test_choice_is_always_sized_at_least_one(args: dict[str, Any]) -> None:
    choice = choose(**args)
    assert choice.mode in ("serial", "thread", "process")
    assert choice.workers >= 1
    assert choice.chunksize >= 1
    assert choice.reason
    if choice.mode == "serial":
        assert choice.workers == 1


@given(choices, st.integers(min_value=0, max_value=1))
def test_nothing_to_overlap_runs_in_a_loop(args: dict[str, Any], count: int) -> None:
    assert choose(**{**args, "count": count}).mode == "serial"


@given(choices, st.sampled_from([TaskKind.IO, TaskKind.GIL_FREE]))
def test_io_work_that_does_not_compute_and_gil_free_work_never_go_to_processes(
    args: dict[str, Any], kind: TaskKind
) -> None:
    assert choose(**{**args, "kind": kind}).mode != "process"


#: Items of a second on two CPUs, a warm process pool: nothing but the items counts.
_LONG_ITEMS: dict[str, Any] = {
    "kind": TaskKind.IO,
    "item_seconds": 1.0,
    "count": 4,
    "cpus": 2,
    "io_cap": 64,
    "unpicklable": None,
    "process_age": 100.0,
    "bytes_per_item": 100,
    "workers": None,
    "chunksize": None,
    "model": FORKSERVER,
}


@given(choices, st.floats(min_value=0.0, max_value=0.4, exclude_max=True), st.integers(min_value=1, max_value=2))
@example(  # four long items computing just under 40 % of their time, a warm pool: the closest call
    {**_LONG_ITEMS, "count": 4}, 0.399, 2
)
def test_three_io_items_or_more_never_go_to_processes_on_two_cpus(
    args: dict[str, Any], share: float, cpus: int
) -> None:
    # Two processes run two items at a time; threads overlap the waits and take turns
    # computing: processes would win only for two items, or four to eight items that
    # compute 40 % of their time or more (an I/O-bound item computes less than half).
    args.update(kind=TaskKind.IO, cpus=cpus, item_cpu=share * args["item_seconds"], count=max(3, args["count"]))
    assert choose(**args).mode != "process"


def test_two_long_io_items_that_compute_go_to_a_warm_process_pool_on_two_cpus() -> None:
    # Each waits 0.7 s, then computes 0.3 s: threads take 0.7 + 2 × 0.3 s, two
    # processes 1 s. Not from a cold pool, nor for three such items (two rounds: 2 s,
    # against 0.7 + 3 × 0.3 s).
    two = {**_LONG_ITEMS, "count": 2, "item_cpu": 0.3}
    assert choose(**two).mode == "process"
    assert "≈ 1.30 s on 2 threads taking turns for the GIL" in choose(**two).reason
    assert choose(**{**two, "process_age": None}).mode == "thread"
    assert choose(**{**two, "count": 3}).mode == "thread"


#: 40 items that wait 20 ms, then compute 2 ms holding the GIL.
_WAIT_THEN_COMPUTE: dict[str, Any] = {
    "kind": TaskKind.IO,
    "item_seconds": 0.022,
    "item_cpu": 0.002,
    "count": 40,
    "io_cap": 64,
    "unpicklable": None,
    "bytes_per_item": 100,
    "model": FORKSERVER,
}


def test_threads_are_estimated_to_take_turns_for_the_gil_while_io_items_compute() -> None:
    choice = choose(**_WAIT_THEN_COMPUTE, cpus=2, process_age=100.0)
    assert choice.mode == "thread"
    # One wait of 20 ms (all at once), then 40 × 2 ms of computing, one thread at a time,
    # rather than one round of 22 ms; and 40 thread starts.
    assert "≈ 104.0 ms on 40 threads taking turns for the GIL" in choice.reason, choice.reason


def test_io_items_that_compute_go_to_a_warm_process_pool_on_many_cpus() -> None:
    warm = choose(**_WAIT_THEN_COMPUTE, cpus=16, process_age=100.0)
    assert (warm.mode, warm.workers) == ("process", 16), warm.reason
    assert "on 16 processes (warm), against ≈ 104.0 ms on 40 threads taking turns for the GIL" in warm.reason
    # Not from a cold pool, whose start costs more than they gain; not on 8 CPUs (5
    # rounds of 22 ms lose to 20 + 40 × 2 ms); not when the items do not compute, cannot be
    # pickled, or the caller sized the pool.
    assert choose(**_WAIT_THEN_COMPUTE, cpus=16, process_age=None).mode == "thread"
    assert choose(**_WAIT_THEN_COMPUTE, cpus=8, process_age=100.0).mode == "thread"
    assert choose(**{**_WAIT_THEN_COMPUTE, "item_cpu": 0.0}, cpus=16, process_age=100.0).mode == "thread"
    assert choose(**{**_WAIT_THEN_COMPUTE, "unpicklable": "a lambda"}, cpus=16, process_age=100.0).mode == "thread"
    assert choose(**_WAIT_THEN_COMPUTE, cpus=16, process_age=100.0, workers=16).mode == "thread"


def test_io_items_near_break_even_stay_in_the_mode_of_the_last_call() -> None:
    # 40 items on 16 warm processes: 3 rounds of 22 ms, ≈ 67 ms. Threads: one 20 ms wait,
    # then 40 × 1.2 ms of computing in turns, ≈ 69 ms. Neither wins by a tenth: the
    # items stay where the last call ran them, threads or processes.
    near = {**_WAIT_THEN_COMPUTE, "item_cpu": 0.0012, "cpus": 16, "process_age": 100.0}
    assert choose(**near).mode == "thread"
    assert choose(**near, processes_last=True).mode == "process"
    # Either wins clearly: the last call does not matter.
    assert choose(**{**near, "item_cpu": 0.0005}, processes_last=True).mode == "thread"
    assert choose(**{**near, "item_cpu": 0.002}).mode == "process"
    # Nor on two CPUs, where processes lose by far.
    assert choose(**{**near, "cpus": 2}, processes_last=True).mode == "thread"


@given(choices)
def test_cpu_work_never_goes_to_threads(args: dict[str, Any]) -> None:
    assert choose(**{**args, "kind": TaskKind.CPU}).mode != "thread"


@given(st.integers(min_value=2, max_value=10_000_000), st.integers(min_value=2, max_value=64))
def test_sub_microsecond_items_never_go_to_processes(count: int, cpus: int) -> None:
    # However many, and however warm the pool: each outcome costs the calling process
    # more to unpickle than the item takes to run.
    choice = choose(
        kind=TaskKind.CPU,
        item_seconds=0.5e-6,
        count=count,
        cpus=cpus,
        io_cap=64,
        unpicklable=None,
        process_age=100.0,
        server_started=True,
        bytes_per_item=0,
        model=FORKSERVER,
    )
    assert choice.mode == "serial", choice.reason


@given(choices, st.sampled_from([TaskKind.CPU, TaskKind.GIL_FREE]))
def test_one_cpu_gives_no_pool_for_computing_work_unless_workers_are_given(
    args: dict[str, Any], kind: TaskKind
) -> None:
    assert choose(**{**args, "kind": kind, "cpus": 1, "workers": None}).mode == "serial"


@given(choices)
def test_unpicklable_work_never_goes_to_processes(args: dict[str, Any]) -> None:
    args.update(unpicklable="a lambda cannot be pickled")
    choice = choose(**args)
    assert choice.mode != "process"


@given(choices)
def test_a_pool_honours_the_callers_sizing(args: dict[str, Any]) -> None:
    choice = choose(**args)
    assume(choice.mode != "serial")
    if args["workers"] is not None:
        assert choice.workers == args["workers"]
    if args["chunksize"] is not None:
        assert choice.chunksize == args["chunksize"]


# Found by hand: at 25 ms an item, the process chunk drops from 2 items to 1, so the
# estimated round trips double and outweigh the extra work; a pool at 24.99 ms per item
# becomes a loop at 25 ms.
_CHUNK_BOUNDARY = {
    "kind": TaskKind.CPU,
    "item_seconds": 0.0249999,
    "count": 100,
    "cpus": 2,
    "io_cap": 64,
    "unpicklable": None,
    "process_age": 1.0,
    "bytes_per_item": 4_900_000,
    "workers": None,
    "chunksize": None,
    "model": FORKSERVER,
}


@example(_CHUNK_BOUNDARY, 0.025 / 0.0249999)
@given(choices, st.floats(min_value=1.0, max_value=1e4))
def test_longer_items_never_turn_a_pool_back_into_a_loop(args: dict[str, Any], factor: float) -> None:
    shorter = choose(**args)
    longer = choose(**{**args, "item_seconds": args["item_seconds"] * factor})
    if shorter.mode != "serial":
        assert longer.mode == shorter.mode, (shorter, longer)


@given(
    st.sampled_from(["serial", "thread", "process"]),
    st.none() | kinds,
    counts,
    cpus,
    st.integers(min_value=1, max_value=1024),
    optional_count,
    optional_count,
)
def test_forced_choice_keeps_the_mode_and_sizes_it(  # noqa: PLR0913, PLR0917
    mode: str, kind: TaskKind | None, count: int, cpus: int, io_cap: int, workers: int | None, chunksize: int | None
) -> None:
    choice = forced_choice(mode, kind=kind, count=count, cpus=cpus, io_cap=io_cap, workers=workers, chunksize=chunksize)
    assert choice.mode == mode
    assert choice.workers >= 1
    assert choice.chunksize >= 1
    if mode == "serial":
        assert choice.workers == 1
    elif workers is not None:
        assert choice.workers == workers
    if chunksize is not None:
        assert choice.chunksize == chunksize


# --- the classifier chain ---------------------------------------------------------------

answers = st.none() | kinds | kinds.map(str)


class Fixed:
    """A classifier with a fixed answer."""

    def __init__(self, answer: TaskKind | str | None) -> None:
        self.answer = answer

    def __call__(self, _fn: object, _sample: tuple[object, ...]) -> TaskKind | str | None:
        return self.answer


#: The kinds a decorator declares (a coroutine function is async by its definition).
declarable = st.sampled_from(sorted(_classify._DECORATOR_NAMES))


@given(call=answers, declared=st.none() | declarable, registered=st.lists(answers, max_size=4))
def test_first_kind_in_chain_order_wins(
    call: TaskKind | str | None, declared: TaskKind | None, registered: list[TaskKind | str | None]
) -> None:
    def fn(x: int) -> int:
        return x

    if declared is not None:
        _classify._declare(fn, declared)
    with _classify._registry_lock:
        saved = _classify._registry
        _classify._registry = tuple(Fixed(answer) for answer in registered)  # oldest first
    try:
        decision = _classify.declared_kind(fn, (1, 2), Fixed(call) if call is not None else None)
    finally:
        with _classify._registry_lock:
            _classify._registry = saved

    expected: tuple[TaskKind, str] | None = None
    if call is not None:
        expected = (TaskKind(call), "the call's classifier Fixed")
    elif declared is not None:
        expected = (declared, f"the @{_classify._DECORATOR_NAMES[declared]} declaration")
    else:
        newest_first = [TaskKind(a) for a in reversed(registered) if a is not None]
        if newest_first:
            expected = (newest_first[0], "registered classifier Fixed")
    if expected is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.kind, decision.source) == expected


@given(answer=st.text(max_size=12).filter(lambda s: s not in {k.value for k in TaskKind}))
def test_a_classifier_answer_that_is_not_a_kind_is_rejected(answer: str) -> None:
    try:
        _classify.declared_kind(len, (), Fixed(answer))
    except ValueError:
        return
    raise AssertionError(f"{answer!r} was accepted as a kind")


#: The thresholds the kind is read by.
READ = _classify.Reading()
_SHARES = st.floats(min_value=0.0, max_value=1.0)
_GIL_SHARES = st.none() | _SHARES
#: CPUs' worth of two probe threads computing side by side: up to 2 (and a little over, as measured).
_PARALLELISM = st.none() | st.floats(min_value=0.0, max_value=2.2)
_PRIORS = st.none() | st.sampled_from(list(TaskKind))


@given(_SHARES, _GIL_SHARES, _PRIORS, _PARALLELISM)
def test_kind_from_measurement_is_always_a_kind(
    cpu_share: float, gil_share: float | None, prior: TaskKind | None, parallelism: float | None
) -> None:
    kind = _classify.kind_from_measurement(cpu_share, gil_share, prior, parallelism)
    assert isinstance(kind, TaskKind)
    # Mostly waiting is I/O, whatever else the monitor saw (threads overlap the waits).
    assert (kind is TaskKind.IO) == (cpu_share < READ.compute_share)


@given(_SHARES, _GIL_SHARES, _PRIORS, _PARALLELISM)
def test_only_two_threads_computing_side_by_side_make_computing_items_gil_free(
    cpu_share: float, gil_share: float | None, prior: TaskKind | None, parallelism: float | None
) -> None:
    # The GIL monitor can be fooled into reading the GIL free (C code that keeps it in
    # short calls); two threads computing more than a CPU's worth between them cannot.
    kind = _classify.kind_from_measurement(cpu_share, gil_share, prior, parallelism)
    if cpu_share < READ.compute_share:
        return
    proven = parallelism is not None and parallelism >= READ.parallel_share
    if proven:
        assert kind is TaskKind.GIL_FREE
    elif kind is TaskKind.GIL_FREE:
        # Only a GIL-free prior that nothing contradicts keeps it.
        assert prior is TaskKind.GIL_FREE
        assert gil_share is None or gil_share < READ.gil_bound_share


@given(_SHARES, _GIL_SHARES, _PARALLELISM)
def test_a_computing_prior_stands_unless_the_measurement_proves_otherwise(
    cpu_share: float, gil_share: float | None, parallelism: float | None
) -> None:
    if cpu_share < READ.compute_share:
        return
    proven = parallelism is not None and parallelism >= READ.parallel_share
    held = gil_share is not None and gil_share >= READ.gil_bound_share
    # CPU becomes GIL-free only on the proof; GIL-free becomes CPU only when the monitor saw the GIL held.
    assert (_classify.kind_from_measurement(cpu_share, gil_share, TaskKind.CPU, parallelism) is TaskKind.CPU) == (
        not proven
    )
    assert (
        _classify.kind_from_measurement(cpu_share, gil_share, TaskKind.GIL_FREE, parallelism) is TaskKind.GIL_FREE
    ) == (proven or not held)


@given(_SHARES, _GIL_SHARES, _PARALLELISM)
def test_without_a_prior_computing_items_are_cpu_unless_proven_gil_free(
    cpu_share: float, gil_share: float | None, parallelism: float | None
) -> None:
    if cpu_share < READ.compute_share:
        return
    proven = parallelism is not None and parallelism >= READ.parallel_share
    expected = TaskKind.GIL_FREE if proven else TaskKind.CPU
    assert _classify.kind_from_measurement(cpu_share, gil_share, None, parallelism) is expected
    # A waiting prior does not agree with computing items: as if there were none.
    assert _classify.kind_from_measurement(cpu_share, gil_share, TaskKind.IO, parallelism) is expected


def _io_cost(count: int, seconds: float, threads: int) -> float:
    return math.ceil(count / threads) * seconds + threads * THREAD_START


@given(
    st.integers(min_value=1, max_value=3000),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=1, max_value=2000),
)
def test_io_threads_are_within_the_cap_and_cost_least(count: int, seconds: float, cap: int) -> None:
    threads = io_threads(count, seconds, cap, THREAD_START)
    assert 1 <= threads <= min(count, cap)
    # No other thread count under the cap costs less (rounds of waits plus thread starts).
    best = min(_io_cost(count, seconds, w) for w in range(1, min(count, cap) + 1))
    assert _io_cost(count, seconds, threads) <= best * (1 + 1e-9) + 1e-12


@given(st.integers(min_value=2, max_value=5000), st.integers(min_value=1, max_value=2000))
def test_waits_longer_than_starting_a_thread_per_item_get_one_round(count: int, cap: int) -> None:
    # A second round costs a whole wait; a thread per item costs count × THREAD_START less than that.
    seconds = 2 * count * THREAD_START
    assert math.ceil(count / io_threads(count, seconds, cap, THREAD_START)) == math.ceil(count / min(count, cap))


def test_a_hundred_waits_of_50_ms_get_a_thread_each_in_one_round() -> None:
    def threads(io_cap: int) -> tuple[str, int]:
        choice = choose(
            kind=TaskKind.IO,
            item_seconds=0.05,
            count=100,
            cpus=2,
            io_cap=io_cap,
            unpicklable=None,
            process_age=None,
            bytes_per_item=100,
            model=FORKSERVER,
        )
        return choice.mode, choice.workers

    assert threads(512) == ("thread", 100)
    assert threads(64) == ("thread", 50)  # a user's cap is a hard limit: two even rounds
