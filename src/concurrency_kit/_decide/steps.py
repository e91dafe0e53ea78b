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
                           calling thread watches the GIL                     (probe.py)
    then the cost model picks the mode for the rest (_decide.choose.choose), and what was measured
    is remembered for the next calls (memory.py).

A step that cannot answer leaves what it found (a measurement too short to trust, the
items it ran) to the next; the probe always answers. Every step keeps the results of
the items it ran: nothing runs twice. Memory alone never decides: being wrong there
costs a pool's round trips for tiny items, or a loop for long ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, final

import attrs

from .._backends.outcomes import EMPTY, Outcomes, timed_out
from .._backends.pools import (
    forkserver_started,
    process_pool_age,
    submit_daemon,
)
from .._backends.registry import Sent, Unit, send_first
from .._backends.worker import in_worker
from .._core.costmodel import CostModel, model_in_force
from .._core.cpu import gil_enabled
from .._core.errors import UnpicklableTaskError
from .._core.kinds import TaskKind
from .choose import choose
from .classify import Decision, agrees, kind_from_measurement, partly_waits
from .fitness import prestarter, process_fitness, warm_for_next_calls
from .learning import (
    Measured,
    ProbeLeft,
    changed,
    estimated_item_cpu,
    estimated_item_seconds,
    learn,
)
from .measuring import POLICY, in_pool, measure_inline
from .memory import Memo, recall
from .ordering import NO_BALANCING, Balancing, balancing, dearest_first
from .plan import Choice, Reason
from .probe import PROBING, Measurement, ProbePolicy, ProbeRun, probe
from .reasons import explained, from_memory, with_pickler, without_gil
from .remembered import (
    cpu_for_warm_pool,
    kept_loop_choice,
    loop_expected,
    setting_of,
    settled,
)

__all__ = [
    "Decided",
    "Question",
    "decide",
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
    #: The probe, whose threads may still run items it took, for the run to take over.
    measuring: ProbeLeft | None = None
    #: The first item, still running in the worker that measures it.
    sent: Sent | None = None
    #: Items sent to an executor while the first was timed here, each a unit with its task.
    ahead: tuple[tuple[Unit, Future[Any]], ...] = ()
    #: The order a list's run starts the rest in, and what learns from its timed units.
    balancing: Balancing = NO_BALANCING


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
        init_seconds: the call's initializer took this long here (0: it has none):
            each worker runs it once too (the cost model counts it).
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
    init_seconds: float = 0.0
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
        self.seconds, self.deadline, self.init_seconds = q.seconds, q.deadline, q.init_seconds
        self.memo = recall(fn)
        self.model, self.probing = q.model, q.probing
        self.setting = setting_of(
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
        # Started dearest first, neighbours are alike: the spread an earlier run measured is the whole input's.
        spread = 0.0 if memo is None or memo.spread is None or dearest_first(memo) else memo.spread

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
                spread=spread,
                init_seconds=self.init_seconds,
            )

        # Pickling the function and an item (which may be large) is only worth it when
        # processes would win were pickling free: it can only make them lose.
        unpickled = cost_model(None, 0)
        if free or unpickled.mode != "process":
            return unpickled
        if self._fitness is None:
            values = self.outcomes.values
            self._fitness = process_fitness(self.fn, self.sequence, resume_at, values[0] if values else EMPTY)
        return cost_model(*self._fitness)

    def measured_kind(self, m: Measurement) -> TaskKind:
        """The kind ``m`` says (declared first; an earlier call's kind as the prior).

        Without a GIL (free-threaded CPython), computing items run side by side in
        threads: they are ``gil_free`` whatever the figures.
        """
        prior = None if self.memo is None else self.memo.kind
        kind = self.declared or kind_from_measurement(m.cpu_share, m.gil_share, prior, m.parallelism)
        return TaskKind.GIL_FREE if kind is TaskKind.CPU and not gil_enabled() else kind

    def cpu_for_warm_pool(self, *, longer: bool) -> bool:
        """``cpu_for_warm_pool`` for this call: items longer than the probe's quick window (or no longer)."""
        return cpu_for_warm_pool(
            self.fn,
            self.memo,
            self.declared,
            longer=longer,
            count=self.planned,
            workers=self.workers,
            cpus=self.cpus,
            window=self.probing.quick_window,
        )


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
    d.inline = inline = measure_inline(d.fn, d.sequence, d.outcomes, d.count - 1, POLICY.inline_check_seconds)
    loop = kept_loop_choice(memo, d.planned - inline.items, inline, d.setting)
    if loop is None or d.outcomes.failed or changed(memo.item_seconds, inline.item_wall, POLICY.drift):
        return None  # the next step takes the check's figures
    known = d.declared or memo.kind
    return Decided(loop, known, inline, explained(inline, known, from_memory(memo), loop), inline.items)


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
        d.measurement, d.resume_at = measure_inline(fn, d.sequence, d.outcomes, 1), 1
        return _conclude(d)
    if d.deadline is not None:
        return None
    with_verdict: Memo | None = None
    short_cpu = False
    if memo is not None:
        with_verdict = memo if d.inline is not None else loop_expected(fn, memo, d.planned, d.setting, d.choose)
    if with_verdict is None and not (memo is None and d.planned >= POLICY.long_input * d.io_cap):
        short_cpu = d.cpu_for_warm_pool(longer=False)
        if not short_cpu:
            return None
    budget = d.probing.quick_window if short_cpu else POLICY.inline_check_seconds
    measurement = d.inline or measure_inline(fn, d.sequence, d.outcomes, d.count - 1, budget)
    d.resume_at = measurement.items
    # One thread gives no GIL samples: the remembered kind stands, else the measured one.
    guessed = d.measured_kind(measurement) if memo is None else d.declared or memo.kind
    grew = memo is not None and measurement.item_wall > POLICY.drift * memo.item_seconds + 20e-6
    memo = d.memo = with_verdict or memo  # with the verdict it may have kept
    loop = (
        None if grew or d.outcomes.failed else kept_loop_choice(memo, d.planned - d.resume_at, measurement, d.setting)
    )
    checked = loop or d.choose(measurement, d.resume_at, guessed)
    if d.outcomes.failed or (
        not grew and (checked.mode == "serial" or (short_cpu and agrees(guessed, measurement.cpu_share)))
    ):
        d.measurement, d.kind, d.chosen = measurement, guessed, checked
        if memo is not None:
            d.source = from_memory(memo)
            d.covered = loop is not None and not changed(memo.item_seconds, measurement.item_wall, POLICY.drift)
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
    if d.deadline is not None or memo is None or not d.cpu_for_warm_pool(longer=True):
        return None
    try:
        seconds, d.sent = send_first(
            d.fn, d.sequence, d.outcomes, workers=d.workers or min(d.planned, d.cpus), within=d.probing.quick_window
        )
    except UnpicklableTaskError:
        return None  # the probe measures it here instead
    d.measurement, d.resume_at = in_pool(seconds, done=d.sent is None), 1
    d.kind, d.source = d.declared or memo.kind, from_memory(memo, d.source)
    return _conclude(d)


def in_probe_threads(d: _Decision) -> Decided:
    """The probe: the first items in up to two threads while the calling thread watches the GIL (probe.py).

    Raises:
        TimeoutError: the deadline passed while measuring.
    """
    start, memo = d.resume_at, d.memo
    # A kind read once may be a misread: the probe reads it again in full (``Memo.sure``).
    prior = d.declared or (None if memo is None or not memo.sure else memo.kind)

    def settles(m: Measurement) -> bool:
        kind = d.measured_kind(m)
        if kind is not prior and m.completed == 0 and partly_waits(kind, m.cpu_share, m.gil_share):
            # Items that computed first may be waiting now (unless declared, or as
            # an earlier call found them): an item's end tells.
            return False
        return settled(d.choose(m, start + m.items, kind))

    try:
        d.run = probe(
            d.fn,
            d.sequence,
            d.outcomes,
            submit_daemon,
            on_gil_held=prestarter(d.fn, d.declared, d.workers, d.cpus),
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
        d.source = from_memory(memo, d.source)
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
        learn(d.fn, Measured(kind, measurement, choice.mode, memo, d.setting))
    if choice.mode == "thread" and kind is TaskKind.IO:
        warm_for_next_calls(d.fn, d.choose(measurement, d.resume_at, kind, warm=True))
    reason = explained(measurement, kind, d.source, choice)
    if choice.mode == "process":
        reason = with_pickler(reason, d.fn)
    if not gil_enabled():
        reason = without_gil(reason)
    left = None if d.run is None else ProbeLeft(d.fn, d.run, kind, d.outcomes, d.model)
    balanced = balancing(d.fn, d.sequence, recall(d.fn), choice, d.planned - d.resume_at)
    return Decided(choice, kind, measurement, reason, d.resume_at, left, d.sent, balancing=balanced)
