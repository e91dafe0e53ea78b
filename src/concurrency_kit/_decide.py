"""The auto decision: a short list of named steps, tried in order; the first that answers wins.

    decide(fn, items)
      ├─ kept_loop         a loop an earlier call's cost model chose covers this call, at
      │                    the remembered item time: the first items, timed here, confirm it
      ├─ check_here        the items are remembered tiny, or the input is long, or they are
      │                    remembered short and holding the GIL with a pool warm for them:
      │                    the first items run in the calling thread, timed
      ├─ in_a_worker       they are remembered long and holding the GIL, with a pool warm
      │                    for them: the first item runs in a worker
      └─ in_probe_threads  the probe: up to two threads run the first items while the
                           calling thread watches the GIL                     (_probe.py)
    then the cost model picks the mode for the rest (_choose.choose), and what was measured
    is remembered for the next calls (_memory.py).

A step that cannot answer leaves what it found (a measurement too short to trust, the
items it ran) to the next; the probe always answers. Every step keeps the results of
the items it ran: nothing runs twice. Memory alone never decides: being wrong there
costs a pool's round trips for tiny items, or a loop for long ones.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any, final

import attrs

from ._backends import (
    PROCESS_BACKEND,
    ExecutorRunner,
    Sent,
    Unit,
    executor_name,
    executor_workers,
    task_overhead,
)
from ._choose import choose
from ._classify import READING, Decision, TaskKind, agrees, kind_from_measurement, partly_waits
from ._costmodel import CostModel, model_in_force
from ._cpu import gil_enabled
from ._errors import MainGuardMissingError, UnpicklableTaskError
from ._given import timed_here
from ._memory import LoopVerdict, Memo, recall, remember
from ._outcomes import EMPTY, Outcomes, run_timed, timed_out
from ._pickling import ByValue, pickled, pickled_size, sendable, why_not_picklable
from ._plan import Choice, Plan, Reason, describe_measurement, format_seconds, render
from ._pools import (
    check_main_guard,
    forkserver_started,
    needs_main,
    prestart_process_pool,
    process_pool_age,
    process_pool_ready_for,
    submit_daemon,
)
from ._probe import PROBING, Measurement, ProbePolicy, ProbeRun, probe
from ._sizing import executor_choice
from ._worker import in_worker

__all__ = [
    "Decided",
    "Question",
    "decide",
    "estimated_item_cpu",
    "estimated_item_seconds",
    "final_kind",
    "for_executor",
    "io_memo",
    "memo_of",
    "one_thread_measurement",
    "process_fitness",
]


@final
@attrs.frozen
class Decided:
    """What the steps decided, and what their measuring left under way."""

    choice: Choice
    kind: TaskKind | None
    measurement: Measurement | None
    reason: Reason
    #: The first item no step took: the rest of the call starts there.
    resume_at: int
    #: The probe, whose threads may still run items it took.
    run: ProbeRun | None = None
    #: The first item, still running in the worker that measures it.
    sent: Sent | None = None
    #: Items sent to an executor while the first was timed here, each a unit with its task.
    ahead: tuple[tuple[Unit, Future[Any]], ...] = ()


@final
@attrs.frozen
class Question:
    """An auto call's inputs, as the steps see them.

    Attributes:
        fn: the function.
        sequence: the items the steps may run (a stream's head, or all of them).
        outcomes: where the results of the items they run go.
        planned: how many items the call has in all (``len(sequence)``, or a stream's
            expected count).
        decision: the declared kind and who declared it, if anyone.
        workers: the caller's worker count, if given.
        chunksize: the caller's chunk size, if given.
        cpus: the CPUs the call may use.
        io_cap: the most threads an I/O-bound call may get.
        seconds: the call's timeout, for messages.
        deadline: the ``time.monotonic()`` the call must end by.
        model: the machine figures the cost model weighs (by default, those in force).
        probing: the probe's policy (by default, that in force).
    """

    fn: Callable[[Any], Any]
    sequence: Sequence[Any]
    outcomes: Outcomes
    planned: int
    decision: Decision | None
    workers: int | None
    chunksize: int | None
    cpus: int
    io_cap: int
    seconds: float | None
    deadline: float | None
    model: CostModel = attrs.field(factory=model_in_force)
    probing: ProbePolicy = attrs.field(factory=PROBING.get)


class _Decision:
    """One auto call's decision under way: its inputs, and what the steps found so far."""

    def __init__(self, q: Question) -> None:
        fn, decision, workers, chunksize, cpus, io_cap = q.fn, q.decision, q.workers, q.chunksize, q.cpus, q.io_cap
        self.fn, self.sequence, self.outcomes = fn, q.sequence, q.outcomes
        self.count, self.planned = len(q.sequence), q.planned
        self.declared = None if decision is None else decision.kind
        self.workers, self.chunksize, self.cpus, self.io_cap = workers, chunksize, cpus, io_cap
        self.seconds, self.deadline = q.seconds, q.deadline
        self.memo = recall(fn)
        self.model, self.probing = q.model, q.probing
        self.setting = _setting(
            self.declared, workers, chunksize, cpus=cpus, io_cap=io_cap, count=q.planned, warm_after=q.model.cold_start
        )
        # What the steps found.
        self.source: Reason = "the measurement" if decision is None else decision.source
        self.inline: Measurement | None = None  # the calling thread's check, run for a verdict an earlier call kept
        self.measurement: Measurement | None = None
        self.resume_at = 0
        self.kind: TaskKind | None = None
        self.chosen: Choice | None = None
        self.covered = False  # by a loop verdict an earlier call kept, at about the remembered item time
        self.run: ProbeRun | None = None
        self.sent: Sent | None = None
        self._fitness: tuple[str | None, int] | None = None  # computed once, when first needed

    def choose(
        self, measurement: Measurement, resume_at: int, kind: TaskKind, *, free: bool = False, warm: bool = False
    ) -> Choice:
        """The cost model's choice for the items after ``resume_at``.

        ``free``: were pickling free; ``warm``: were a process pool warm for them.
        """
        left = self.planned - resume_at
        if self.outcomes.failed:
            return Choice("serial", 1, 1, f"item {self.outcomes.error_index} raised while measuring")
        if in_worker():
            return Choice("serial", 1, max(1, left), "called inside a concurrency_kit worker: runs serially")
        memo, workers = self.memo, self.workers

        if kind is TaskKind.CPU and not gil_enabled():
            kind = TaskKind.GIL_FREE  # declared or remembered: without a GIL, threads compute side by side

        def cost_model(unpicklable: str | None, item_bytes: int) -> Choice:
            return choose(
                kind=kind,
                item_seconds=estimated_item_seconds(kind, measurement, memo),
                item_cpu=estimated_item_cpu(kind, measurement, memo) or 0.0,
                count=left,
                cpus=self.cpus,
                io_cap=self.io_cap,
                unpicklable=unpicklable,
                process_age=math.inf if warm else process_pool_age(workers or min(left, self.cpus)),
                server_started=forkserver_started(),
                bytes_per_item=item_bytes,
                workers=workers,
                chunksize=self.chunksize,
                processes_last=memo is not None and memo.kind is kind and memo.in_processes,
                model=self.model,
            )

        # Pickling the function and an item (which may be large) is only worth it when
        # processes would win were pickling free: it can only make them lose.
        unpickled = cost_model(None, 0)
        if free or unpickled.mode != "process":
            return unpickled
        if self._fitness is None:
            self._fitness = process_fitness(self.fn, self.sequence, self.outcomes, resume_at)
        return cost_model(*self._fitness)

    def measured_kind(self, m: Measurement) -> TaskKind:
        """The kind ``m`` says (declared first; an earlier call's kind as the prior).

        Without a GIL (free-threaded CPython), computing items run side by side in
        threads: they are ``gil_free`` whatever the figures.
        """
        prior = None if self.memo is None else self.memo.kind
        kind = self.declared or kind_from_measurement(m.cpu_share, m.gil_share, prior, m.parallelism)
        return TaskKind.GIL_FREE if kind is TaskKind.CPU and not gil_enabled() else kind


def decide(question: Question) -> Decided:
    """Decide how auto mode runs ``question.fn`` over its items; the steps run the first ones.

    Their results go into ``question.outcomes``.

    Raises:
        TimeoutError: the deadline passed while the first items were measured.
    """
    d = _Decision(question)
    for step in STEPS:
        decided = step(d)
        if decided is not None:
            return decided
    raise AssertionError("the probe always answers")


def kept_loop(d: _Decision) -> Decided | None:
    """A loop verdict an earlier call kept covers the call, at the remembered item time: check it here.

    The first items run in the calling thread for the policy's ``inline_check_seconds``; the loop stands
    when the verdict covers them as measured (as the later steps would find, with fewer
    of them: a tiny call's overhead). Not with a timeout: an item running in the calling
    thread could outlast it.
    """
    memo = d.memo
    if (
        d.deadline is not None
        or memo is None
        or memo.loop is None
        or d.count <= 1
        or not memo.loop.covers(d.planned, memo.item_seconds, d.setting)
    ):
        return None
    d.inline = inline = _measure_inline(d.fn, d.sequence, d.outcomes, d.count - 1, POLICY.inline_check_seconds)
    loop = _kept_loop(memo, d.planned - inline.items, inline, d.setting)
    if loop is None or d.outcomes.failed or _changed(memo.item_seconds, inline.item_wall, POLICY.drift):
        return None  # the next step takes the check's figures
    known = d.declared or memo.kind
    return Decided(loop, known, inline, _explained(inline, known, _from_memory(memo), loop), inline.items)


def check_here(d: _Decision) -> Decided | None:
    """Run the first items in the calling thread, timed, where a thread would cost more than it could tell.

    A single item (without a timeout), or a call inside a worker. Or: an earlier call
    found the items this small, or the input is so long that its first item costs a
    small share of the call even if slow: they run for ``inline_check_seconds``, and the
    loop stands if the cost model still says so. Or it found short items computing, and a pool is warm for
    them: they run for the probe's ``quick_window``, and go to the pool at once if they still compute,
    as long. Not with a timeout: an item running in the calling thread could outlast it.
    """
    memo, fn = d.memo, d.fn
    if (d.count == 1 and d.deadline is None) or in_worker():
        d.measurement, d.resume_at = _measure_inline(fn, d.sequence, d.outcomes, 1), 1
        return _conclude(d)
    if d.deadline is not None:
        return None
    with_verdict: Memo | None = None
    short_cpu = False
    if memo is not None:
        with_verdict = memo if d.inline is not None else _loop_expected(fn, memo, d.planned, d.setting, d.choose)
    if with_verdict is None and not (memo is None and d.planned >= POLICY.long_input * d.io_cap):
        short_cpu = _short_cpu_for_warm_pool(
            fn, memo, d.declared, count=d.planned, workers=d.workers, cpus=d.cpus, window=d.probing.quick_window
        )
        if not short_cpu:
            return None
    budget = d.probing.quick_window if short_cpu else POLICY.inline_check_seconds
    measurement = d.inline or _measure_inline(fn, d.sequence, d.outcomes, d.count - 1, budget)
    d.resume_at = measurement.items
    # One thread gives no GIL samples: the remembered kind stands, else the measured one.
    guessed = d.measured_kind(measurement) if memo is None else d.declared or memo.kind
    grew = memo is not None and measurement.item_wall > POLICY.drift * memo.item_seconds + 20e-6
    memo = d.memo = with_verdict or memo  # with the verdict it may have kept
    loop = None if grew or d.outcomes.failed else _kept_loop(memo, d.planned - d.resume_at, measurement, d.setting)
    checked = loop or d.choose(measurement, d.resume_at, guessed)
    if d.outcomes.failed or (
        not grew and (checked.mode == "serial" or (short_cpu and agrees(guessed, measurement.cpu_share)))
    ):
        d.measurement, d.kind, d.chosen = measurement, guessed, checked
        if memo is not None:
            d.source = _from_memory(memo)
            d.covered = loop is not None and not _changed(memo.item_seconds, measurement.item_wall, POLICY.drift)
        return _conclude(d)
    d.memo = None  # a pool may pay, or the items grew: the probe measures the rest afresh
    return None


def in_a_worker(d: _Decision) -> Decided | None:
    """An earlier call found long items holding the GIL, and a pool is warm for them: measure the first in a worker.

    A probe thread here would take a CPU, and the GIL from the threads that feed the
    pool, while the workers run the rest. Back within the probe's ``quick_window``, the cost model
    decides on the time it took there; still running, the rest go to the pool.
    """
    memo = d.memo
    if (
        d.deadline is not None
        or memo is None
        or not _long_cpu_for_warm_pool(
            d.fn, memo, d.declared, count=d.planned, workers=d.workers, cpus=d.cpus, window=d.probing.quick_window
        )
    ):
        return None
    try:
        seconds, d.sent = PROCESS_BACKEND.send_first(
            d.fn, d.sequence, d.outcomes, workers=d.workers or min(d.planned, d.cpus), within=d.probing.quick_window
        )
    except UnpicklableTaskError:
        return None  # the probe measures it here instead
    d.measurement, d.resume_at = _in_pool(seconds, done=d.sent is None), 1
    d.kind, d.source = d.declared or memo.kind, _from_memory(memo, d.source)
    return _conclude(d)


def in_probe_threads(d: _Decision) -> Decided:
    """The probe: the first items in up to two threads while the calling thread watches the GIL (_probe.py).

    Raises:
        TimeoutError: the deadline passed while measuring.
    """
    start, memo = d.resume_at, d.memo
    prior = d.declared or (None if memo is None else memo.kind)

    def settles(m: Measurement) -> bool:
        kind = d.measured_kind(m)
        if kind is not prior and m.completed == 0 and partly_waits(kind, m.cpu_share, m.gil_share):
            # Items that computed first may be waiting now (unless declared, or as
            # an earlier call found them): an item's end tells.
            return False
        return _settled(d.choose(m, start + m.items, kind))

    try:
        d.run = probe(
            d.fn,
            d.sequence,
            d.outcomes,
            submit_daemon,
            on_gil_held=_prestarter(d.fn, d.declared, d.workers, d.cpus),
            settled=settles,
            # A kind known beforehand (declared, or from an earlier call) needs no GIL
            # samples: the probe ends as soon as the CPU share agrees and the choice stands.
            enough=None if prior is None else lambda m: agrees(prior, m.cpu_share) and settles(m),
            threads=1 if prior is TaskKind.CPU else d.probing.threads,
            policy=d.probing,
            deadline=d.deadline,
            start=start,
        )
    except TimeoutError:  # the probe's own: fn's exceptions are recorded, not raised
        raise timed_out(d.seconds, d.outcomes) from None
    d.measurement, d.resume_at = d.run.measurement, d.run.resume_at
    if memo is not None:
        d.source = _from_memory(memo, d.source)
    return _conclude(d)


#: The steps, in order (see the module's docstring).
STEPS: tuple[Callable[[_Decision], Decided | None], ...] = (kept_loop, check_here, in_a_worker, in_probe_threads)


def _conclude(d: _Decision) -> Decided:
    """The cost model's choice on what a step measured; remember it for the next calls."""
    measurement, memo = d.measurement, d.memo
    assert measurement is not None
    kind = d.kind or d.measured_kind(measurement)
    choice = d.chosen or d.choose(measurement, d.resume_at, kind)
    # Once run() has the rest, where items were still running; and not for a loop that a
    # kept verdict covers at about the remembered time: the verdict holds for these items
    # (on a busy machine their time swings, and the write would cost a tiny call more
    # than its own decision).
    if not d.covered and not d.outcomes.failed and not in_worker() and measurement.exact:
        kept = None if memo is None or memo.loop is None or memo.loop.setting != d.setting else memo.loop
        fresh = memo_of(kind, measurement, kept)
        if memo is not None and memo.kind is kind and memo.item_alone is not None:
            fresh = attrs.evolve(fresh, item_alone=memo.item_alone)
        if kind is TaskKind.IO and _in_processes(choice.mode, memo):
            fresh = attrs.evolve(fresh, in_processes=True)
        if (
            memo is None
            or memo.kind is not kind
            or memo.loop is not kept
            or memo.in_processes != fresh.in_processes
            or _changed(memo.item_seconds, fresh.item_seconds)
            or _changed(memo.item_cpu or 0.0, fresh.item_cpu or 0.0)
        ):
            remember(d.fn, fresh)
    if choice.mode == "thread" and kind is TaskKind.IO:
        _warm_for_next_calls(d.fn, d.choose(measurement, d.resume_at, kind, warm=True))
    reason = _explained(measurement, kind, d.source, choice)
    if choice.mode == "process":
        reason = _with_pickler(reason, d.fn)
    if not gil_enabled():
        reason = _without_gil(reason)
    return Decided(choice, kind, measurement, reason, d.resume_at, d.run, d.sent)


def _without_gil(reason: Reason) -> Callable[[], str]:
    """``reason``, saying that this interpreter runs without a GIL."""

    def text() -> str:
        return render(reason) + (
            "; the GIL is disabled (free-threaded CPython): computing items run side by side in threads, "
            "and the probe reads no GIL"
        )

    return text


def _with_pickler(reason: Reason, fn: Callable[[Any], Any]) -> Callable[[], str]:
    """``reason``, saying so when ``fn`` goes to the workers by value (cloudpickle)."""

    def text() -> str:
        by_value = isinstance(sendable(fn), ByValue)
        return render(reason) + ("; the function goes by value (cloudpickle)" if by_value else "")

    return text


def for_executor(q: Question, executor: Executor) -> Decided:
    """How a call runs through ``executor``: the first items timed here, then chunks sized for its task overhead.

    The items run in the calling thread for :attr:`DecisionPolicy.executor_check_seconds` (at least
    one), as a loop would; their results are kept. Not for a function an earlier call
    measured (its item time sizes the tasks: a size off by a few times costs a few per
    cent of overhead, while an item timed here takes a CPU, and time, from the
    executor's start), with a timeout (an item running here could outlast it), nor for
    a single item; with neither a measurement nor a memory, every item is a task.
    """
    fn, outcomes = q.fn, q.outcomes
    memo = recall(fn)
    measurement: Measurement | None = None
    resume_at = 0
    workers = q.workers or executor_workers(executor) or q.cpus
    ahead: tuple[tuple[Unit, Future[Any]], ...] = ()
    if memo is None and q.deadline is None and len(q.sequence) > 1 and not in_worker():
        measurement, ahead = _time_first_items(q, executor, workers)
        resume_at = measurement.items + sum(len(unit.items) for unit, _ in ahead)
    declared = None if q.decision is None else q.decision.kind
    kind: TaskKind | None = declared or (None if memo is None else memo.kind)
    if measurement is not None:
        kind = declared or kind_from_measurement(measurement.cpu_share, None, kind, None)
        item_seconds: float | None = measurement.item_wall
        measured = f"{measurement.items} item(s) timed here"
        if not outcomes.failed and memo is None:
            remember(fn, memo_of(kind, measurement))
    elif memo is not None:
        item_seconds, measured = memo.item_seconds, "what an earlier call measured"
    else:
        item_seconds, measured = None, ""
    name = executor_name(executor)
    if outcomes.failed:
        choice = Choice("executor", 1, 1, f"item {outcomes.error_index} raised while measuring")
    else:
        overhead = None if item_seconds is None or q.chunksize is not None else task_overhead(executor)
        choice = executor_choice(
            name,
            count=max(1, q.planned - resume_at),
            workers=workers,
            overhead=overhead,
            item_seconds=item_seconds,
            chunksize=q.chunksize,
            measured=measured,
        )
    return Decided(choice, kind, measurement, choice.why, resume_at, ahead=ahead)


def _time_first_items(
    q: Question, executor: Executor, workers: int
) -> tuple[Measurement, tuple[tuple[Unit, Future[Any]], ...]]:
    """Time the first items here, for :attr:`DecisionPolicy.executor_check_seconds` (one at least).

    While the first item runs here, the executor need not wait: if it is still running
    after :attr:`DecisionPolicy.executor_check_seconds`, the next ``workers`` items go to the executor
    as tasks of one item each (long items: a task each is the right size anyway), and
    the measurement is that first item. Returns the measurement and those tasks.
    """
    fn, items, outcomes = q.fn, q.sequence, q.outcomes
    runner = ExecutorRunner(executor, fn, collect=outcomes.collect)
    sender = _SendAhead(runner, items, range(1, min(len(items), 1 + workers)))
    timer = threading.Timer(POLICY.executor_check_seconds, sender.send)
    timer.daemon = True
    timer.start()
    try:
        first = _measure_inline(fn, items, outcomes, 1)
    finally:
        timer.cancel()
        ahead = sender.close()
    if ahead or outcomes.failed or first.seconds >= POLICY.executor_check_seconds or len(items) < 3:
        return first, ahead
    budget = POLICY.executor_check_seconds - first.seconds
    rest = _measure_inline(fn, items, outcomes, len(items) - 1, budget, start=1)
    return _joined(first, rest), ()


class _SendAhead:
    """Items sent to the executor by a timer, unless closed first."""

    def __init__(self, runner: ExecutorRunner, items: Sequence[Any], indices: range) -> None:
        self._runner, self._items, self._indices = runner, items, indices
        self._lock = threading.Lock()
        self._closed = False
        self._sent: list[tuple[Unit, Future[Any]]] = []

    def send(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                for index in self._indices:
                    unit = Unit(index, [self._items[index]])
                    self._sent.append((unit, self._runner.submit(unit)))
            except Exception:  # noqa: BLE001 - an item that will not go: the stream meets it again, and says so
                return

    def close(self) -> tuple[tuple[Unit, Future[Any]], ...]:
        """Send nothing from now on (a sending under way ends first); what was sent."""
        with self._lock:
            self._closed = True
            return tuple(self._sent)


def _joined(a: Measurement, b: Measurement) -> Measurement:
    """Two inline measurements of consecutive items, as one."""
    return one_thread_measurement(a.items + b.items, a.seconds + b.seconds, a.item_cpu * a.items + b.item_cpu * b.items)


def _measure_inline(  # noqa: PLR0913 - the items, and when to stop
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    outcomes: Outcomes,
    stop: int,
    budget: float = math.inf,
    *,
    start: int = 0,
) -> Measurement:
    """Run items from ``start`` on in the calling thread, timing them.

    Stops before ``stop``, after a failure, or once ``budget`` seconds have passed. The
    items run in spans of 1, 4, 16 … items, with the clock read between spans: a check of
    items that turned out slow costs one item, and tiny ones run as fast as in a loop.
    The measurement counts the items from ``start`` on.
    """
    if (given := timed_here(fn, items, outcomes, stop, budget, start=start, growth=POLICY.span_growth)) is not None:
        return one_thread_measurement(*given)  # a test's figures (_given)
    # Nothing else runs this call's items yet: no feed is needed to hand them out.
    clock = time.perf_counter
    t0, c0 = clock(), time.thread_time()
    done = run_timed(fn, items, outcomes, stop, budget=budget, growth=POLICY.span_growth, start=start) - start
    return one_thread_measurement(done, clock() - t0, time.thread_time() - c0)


def one_thread_measurement(items: int, wall: float, cpu: float) -> Measurement:
    """What ``items`` items run one after another in one thread measure, in ``wall`` seconds and ``cpu`` of CPU."""
    return Measurement(
        items=items,
        completed=items,
        seconds=wall,
        item_wall=wall / items,
        item_cpu=min(cpu, wall) / items,
        cpu_share=min(1.0, cpu / wall) if wall > 0 else 0.0,
        gil_share=None,
        exact=True,
    )


@final
@attrs.frozen
class DecisionPolicy:
    """The steps' policy numbers."""

    #: Each span of the calling thread's timed check is this many times the last.
    span_growth: int = 4
    #: When an earlier call says items are tiny, this much of the new call's work is run
    #: in the calling thread first, timed, to check the estimate before the loop goes on.
    inline_check_seconds: float = 0.0001
    #: Items that now take this many times longer than remembered (plus 20 µs) have
    #: drifted: the function is measured afresh, its kind too.
    drift: float = 4.0
    #: An input of at least this many times the most threads an I/O-bound call may get
    #: (``max_io_workers``, else 512) is checked in the calling thread first, as
    #: remembered tiny items are: starting probe threads costs more than the whole loop
    #: when the items are tiny, and a slow first item delays a call that long by at most
    #: a tenth (even I/O items, a thread each, take that many rounds).
    long_input: int = 10
    #: A measured item time within this factor of the remembered one is not remembered
    #: anew (nothing that depends on it moves much; a tiny call saves the write).
    same_time: float = 1.25
    #: Through an executor, the first items run in the calling thread for this long (at
    #: least one item), timed, to size the executor's tasks.
    executor_check_seconds: float = 0.002


#: The steps' policy in force.
POLICY = DecisionPolicy()


def _changed(remembered: float, seconds: float, factor: float = POLICY.same_time) -> bool:
    """Whether ``seconds`` differs from the ``remembered`` item time by more than ``factor``."""
    return not remembered / factor <= seconds <= remembered * factor


def _explained(measurement: Measurement, kind: TaskKind, source: Reason, choice: Choice) -> Callable[[], str]:
    """The reason of a plan made on ``measurement``: the figures, the kind and where it came from, the choice."""

    def text() -> str:
        return f"{describe_measurement(measurement)} → {kind} (from {render(source)}); {choice.reason} → {choice.mode}"

    return text


def _describe(memo: Memo) -> str:
    return f"{memo.kind}, {format_seconds(memo.item_seconds)} per item"


def _from_memory(memo: Memo, measured: Reason | None = None) -> Callable[[], str]:
    """Where a kind came from when an earlier call's figures count: what writes it."""

    def text() -> str:
        remembered = f"what an earlier call measured ({_describe(memo)})"
        return remembered if measured is None else f"{render(measured)}, and {remembered}"

    return text


def _loop_expected(
    fn: Callable[[Any], Any],
    memo: Memo,
    count: int,
    setting: tuple[object, ...] | None,
    decide: Callable[..., Choice],
) -> Memo | None:
    """Whether the cost model, fed the remembered estimate, picks the plain loop.

    Returns the memo (with the verdict for a loop it kept: one that holds whatever the
    items pickle to, for the next calls) when it does, else ``None``. A verdict kept
    from an earlier call answers without asking it.
    """
    if memo.loop is not None and memo.loop.covers(count, memo.item_seconds, setting):
        return memo
    guess = _as_measured(memo)
    if decide(guess, 0, memo.kind, free=True).mode == "serial":
        if setting is None:
            return memo
        # Items measured slower on a busy machine would ask the cost model again, and be
        # remembered anew: the verdict covers items ``drift`` times as long where it holds.
        roomy = decide(_as_measured(memo, POLICY.drift), 0, memo.kind, free=True).mode == "serial"
        most = memo.item_seconds * POLICY.drift if roomy else memo.item_seconds
        memo = attrs.evolve(memo, loop=LoopVerdict(count, most, setting))
        remember(fn, memo)
        return memo
    return memo if decide(guess, 0, memo.kind).mode == "serial" else None


def _as_measured(memo: Memo, scale: float = 1.0) -> Measurement:
    """What an earlier call measured, as the cost model takes it (exact, one item), ``scale`` times as long."""
    seconds = memo.item_seconds * scale
    cpu = seconds if memo.item_cpu is None else memo.item_cpu * scale
    return Measurement(
        items=0,
        completed=1,
        seconds=0.0,
        item_wall=seconds,
        item_cpu=cpu,
        cpu_share=min(1.0, cpu / seconds) if seconds > 0 else 1.0,
        gil_share=None,
        exact=True,
    )


def memo_of(kind: TaskKind, m: Measurement, loop: LoopVerdict | None = None) -> Memo:
    """What to remember of exact figures ``m`` of items of ``kind``."""
    return Memo(kind, estimated_item_seconds(kind, m), loop, estimated_item_cpu(kind, m))


def _short_cpu_for_warm_pool(  # noqa: PLR0913 - what the check depends on
    fn: Callable[[Any], Any],
    memo: Memo | None,
    declared: TaskKind | None,
    *,
    count: int,
    workers: int | None,
    cpus: int,
    window: float,
) -> bool:
    """Whether an earlier call found ``fn``'s items computing, shorter than ``window``, and a pool is warm.

    Then the calling thread checks the first items itself: a probe thread, which the
    calling thread watches, holds the GIL for a switch interval (5 ms) before the check
    can end, while the warm workers wait. An item longer than remembered runs whole
    before the check ends, so only short ones are checked so.
    """
    if memo is None or (declared or memo.kind) is not TaskKind.CPU or memo.item_seconds > window:
        return False
    if not gil_enabled():
        return False  # threads compute side by side: no pool is the answer
    return not in_worker() and process_pool_ready_for(workers or min(count, cpus), fn)


def _long_cpu_for_warm_pool(  # noqa: PLR0913 - what the check depends on
    fn: Callable[[Any], Any],
    memo: Memo,
    declared: TaskKind | None,
    *,
    count: int,
    workers: int | None,
    cpus: int,
    window: float,
) -> bool:
    """Whether an earlier call found ``fn``'s items computing, longer than ``window``, and a pool is warm.

    Then the first item is measured in a worker (see :meth:`ProcessBackend.send_first`).
    """
    if (declared or memo.kind) is not TaskKind.CPU or memo.item_seconds <= window or cpus < 2:
        return False
    if not gil_enabled():
        return False
    return not in_worker() and process_pool_ready_for(workers or min(count, cpus), fn)


def _in_pool(seconds: float, *, done: bool) -> Measurement:
    """What measuring the first item in a worker found: it took ``seconds`` there, or is still running then."""
    return Measurement(
        items=1,
        completed=int(done),
        seconds=seconds,
        item_wall=seconds,
        item_cpu=seconds,
        cpu_share=1.0,
        gil_share=None,
        exact=done,
        in_pool=True,
    )


def _setting(  # noqa: PLR0913 - every input the cost model's choice depends on, but the items
    declared: TaskKind | None,
    workers: int | None,
    chunksize: int | None,
    *,
    cpus: int,
    io_cap: int,
    count: int,
    warm_after: float,
) -> tuple[object, ...] | None:
    """What the cost model's choice depends on besides the items: a verdict's setting.

    ``None`` while a process pool is warming up (its start-up cost falls by the moment):
    for ``warm_after`` seconds (the cost model's cold start) after it was made.
    """
    age = process_pool_age(workers or max(1, min(count, cpus)))
    if age is None:
        pool = "server" if forkserver_started() else "none"
    elif age >= warm_after:
        pool = "warm"
    else:
        return None
    return (declared, workers, chunksize, cpus, io_cap, pool, in_worker())


def _kept_loop(memo: Memo | None, left: int, m: Measurement, setting: tuple[object, ...] | None) -> Choice | None:
    """The loop, when the verdict an earlier call kept covers the ``left`` items as measured."""
    verdict = None if memo is None else memo.loop
    if verdict is None or not verdict.covers(left, m.item_wall, setting):
        return None
    most, count = verdict.item_seconds, verdict.count

    def reason() -> str:
        return (
            f"{left} item(s) left, of no more than the {format_seconds(most)} per item for which "
            f"an earlier call's cost model chose a loop for {count} items; too little work to pay for a pool"
        )

    return Choice("serial", 1, max(1, left), reason, by_cost=True)


def _settled(choice: Choice) -> bool:
    """Whether a choice made on lower-bound figures stands (longer items only favour pools)."""
    return not choice.by_cost


def estimated_item_seconds(kind: TaskKind, m: Measurement, memo: Memo | None = None) -> float:
    """How long one item takes run alone, from the probe's figures.

    Items that run in two threads under the GIL take turns, so their wall time is
    about twice their CPU time. When items were still running, the figures are lower
    bounds: an item that has run for L seconds is, on a scale-free prior, expected to
    take about 2·L in all. So the mean is scaled by 1 + (share of items still running):
    2 when none has finished, unless an earlier call measured items of this kind longer,
    and close to 1 when most have. I/O items are never taken shorter than a call in
    processes measured them (:attr:`Memo.item_alone`): the first items can be short
    ones.
    """
    seconds = m.item_wall if kind is TaskKind.IO else max(m.item_cpu, m.item_wall / PROBING.get().threads)
    if not m.exact and m.completed == 0:
        seconds = max(2 * seconds, memo.item_seconds if memo is not None and memo.kind is kind else 0.0)
    elif not m.exact:
        seconds *= 1 + (m.items - m.completed) / m.items
    alone = memo.item_alone if kind is TaskKind.IO and memo is not None and memo.kind is kind else None
    return seconds if alone is None else max(seconds, alone)


def estimated_item_cpu(kind: TaskKind, m: Measurement, memo: Memo | None = None) -> float | None:
    """Of an I/O-bound item's time, the seconds it computes (``None`` for other kinds).

    Threads take turns for the GIL while I/O items compute. Items still running have
    not computed all they will (an item that waits first may compute last): the figure
    is then at least what an earlier call measured.
    """
    if kind is not TaskKind.IO:
        return None
    if m.exact or memo is None or memo.kind is not kind or memo.item_cpu is None:
        return m.item_cpu
    return max(m.item_cpu, memo.item_cpu)


def final_kind(kind: TaskKind, final: Measurement) -> TaskKind:
    """The kind to remember of items decided to be ``kind`` while they ran, now that ``final`` has their figures.

    Computing items that the GIL monitor did not see holding the GIL, but that waited
    most of their time once done, are I/O-bound (they computed first, then waited): a
    call that misread them does not teach the next ones.
    """
    if kind is TaskKind.IO or not agrees(TaskKind.IO, final.cpu_share):
        return kind
    return TaskKind.IO if final.gil_share is None or final.gil_share < READING.get().gil_bound_share else kind


def io_memo(  # noqa: PLR0913 - the call's figures, by name
    memo: Memo, earlier: Memo | None, plan: Plan[Any], *, count: int, seconds: float, cpu: float, warm: bool
) -> Memo:
    """``memo`` of the ``count`` I/O items of a call run as ``plan`` says, with their own length.

    The call took ``seconds`` from the probe's start, and its items computed ``cpu``.

    In processes, an item's own length is the probe items' wall time, or, when the
    pool was ``warm``, the call's time per round of chunks if longer (which counts
    every item, not only the first ones, and what it cost to send them):
    :attr:`Memo.item_alone`.

    In threads, a probe item's wall time counts the turns it waited for the GIL while
    the other threads' items computed. While they take turns, the GIL runs their
    computing one after another, so no item computed for ``seconds - cpu``: an
    item's wait. An item's own length is that wait plus its share of the computing,
    and at least twice its computing (an I/O-bound item waits at least half its time:
    on two CPUs the cost model then picks processes only for a few items, two, or four
    to eight computing 40 % of their time or more). The threads' own CPU time
    (waking to ask for the GIL), and items that overlap their waits unevenly, can make
    this too short: so it is never less than what a call in processes measured, and a
    call that tries processes on it settles it.
    """
    alone = None if earlier is None or earlier.kind is not TaskKind.IO else earlier.item_alone
    pooled = _in_processes(plan.mode, earlier)
    if plan.mode == "process":
        rounds = math.ceil(count / (plan.workers * plan.chunksize)) * plan.chunksize
        own = max(memo.item_seconds, seconds / rounds if warm else 0.0)
        return attrs.evolve(memo, item_seconds=own, item_alone=own, in_processes=pooled)
    if plan.mode != "thread" or not memo.item_cpu or count < 2:
        return attrs.evolve(memo, item_alone=alone, in_processes=pooled)
    own = max(2 * memo.item_cpu, seconds - cpu + cpu / count, alone or 0.0)
    return attrs.evolve(memo, item_seconds=min(memo.item_seconds, own), item_alone=alone, in_processes=pooled)


def _in_processes(mode: str, earlier: Memo | None) -> bool:
    """:attr:`Memo.in_processes` of I/O-bound items after a call that ran them in ``mode``.

    A pool's mode is the answer; a call run in the calling thread tells nothing of which
    pool wins, so the last pool's (``earlier``'s) stands.
    """
    if mode in ("thread", "process"):
        return mode == "process"
    return earlier is not None and earlier.kind is TaskKind.IO and earlier.in_processes


def _warm_for_next_calls(fn: Callable[[Any], Any], warm: Choice) -> None:
    """Start the process pool in the background when ``warm`` (the choice were one warm) is processes.

    For I/O-bound items that compute, on many CPUs: threads take turns for the GIL
    while the items compute, and processes, once warm, would finish sooner; a cold
    pool's start costs more than they would gain in this call, but not in the next.
    """
    if warm.mode == "process":
        prestart_process_pool(warm.workers, fn)


def _prestarter(
    fn: Callable[[Any], Any], declared: TaskKind | None, workers: int | None, cpus: int
) -> Callable[[], object] | None:
    """What the probe calls when it sees the GIL held: warm a process pool meanwhile, if ``fn`` can go to one.

    Whether it can is asked then, not before the probe: asking pickles it (by value, with
    cloudpickle imported for it, when it lives in ``__main__``: milliseconds on a fresh
    interpreter's first call), which items too cheap for any pool never need. The probe
    threads start no new batch meanwhile (``probe``'s ``on_gil_held``).
    """
    if cpus == 1 or declared in (TaskKind.IO, TaskKind.GIL_FREE):
        return None

    def prestart() -> None:
        if why_not_picklable(fn) is None:
            prestart_process_pool(workers or cpus, fn)

    return prestart


def process_fitness(
    fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, resume_at: int
) -> tuple[str | None, int]:
    """Why processes cannot run this (or None), and the pickled bytes per item and result."""
    reason = why_not_picklable(fn)
    if reason is not None:
        return reason, 0
    sample = min(resume_at, len(items) - 1)  # a stream's head may be measured whole
    item = pickled(items[sample])
    if item is None:
        return f"item {sample} cannot be pickled", 0
    item_size = len(item)
    try:
        check_main_guard(main=needs_main(item) or needs_main(pickled(sendable(fn))))
    except MainGuardMissingError:
        return (
            "worker processes would import the main module, which runs this call outside "
            '`if __name__ == "__main__":`, and run the script again',
            0,
        )
    values = outcomes.values  # the first item's result, where it has one
    result = values[0] if values else EMPTY
    result_size = pickled_size(result) if result is not EMPTY else 0
    return None, item_size + (result_size or 0)
