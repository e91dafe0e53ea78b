"""The façade: :func:`run_parallel` and :func:`plan`.

A call flows one way::

    run_parallel(fn, items)
      │
      ├─ plan(fn, items)
      │    ├─ check arguments, materialise items
      │    ├─ classify: the call's classifier → @decorator → registered classifiers
      │    ├─ probe:    the first items run in 2 threads while the caller watches the
      │    │            GIL; their results are kept              (_probe.py)
      │    └─ cost model: loop vs the pool the kind calls for     (_plan.py)
      │
      └─ Plan.run()
           ├─ backend runs the items the probe did not take       (_backends/)
           ├─ the probe's threads finish the items they took
           └─ results in input order, or the first failure re-raised
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future
from itertools import chain, islice
from typing import Any, TypeVar

import attrs

from ._backends import BACKENDS, PROCESS_BACKEND, Sent
from ._classify import GIL_BOUND_SHARE, TaskKind, agrees, declared_kind, kind_from_measurement, partly_waits
from ._config import get_config
from ._cpu import planning_cpus
from ._errors import UnpicklableTaskError
from ._memory import LoopVerdict, Memo, forget_all, recall, remember
from ._outcomes import EMPTY, Feed, Outcomes, iterate_from, noted, run_items, run_timed
from ._pickling import pickled_size, why_not_picklable
from ._plan import (
    MODES,
    PROCESS_COLD_START,
    Choice,
    Mode,
    Plan,
    Reason,
    choose,
    describe_measurement,
    forced_choice,
    format_seconds,
    render,
)
from ._pools import (
    forkserver_started,
    prestart_process_pool,
    process_pool_age,
    process_pool_ready_for,
    submit_daemon,
)
from ._pools import shutdown as stop_pools
from ._probe import PROBE_THREADS, QUICK_WINDOW, Measurement, ProbeRun, probe
from ._stream import ProcessRunner, Progress, ProgressBar, ResultStream, Runner, ThreadRunner, Unit, loop, stream
from ._worker import in_worker

__all__ = ["iter_parallel", "plan", "run_parallel", "shutdown"]

T = TypeVar("T")
R = TypeVar("R")


@attrs.define(eq=False)
class _Call:
    """What a plan needs to run: the inputs, and what the measurement already ran."""

    fn: Callable[[Any], Any]
    items: Sequence[Any]
    #: The measured items' outcomes and the probe still running some: the first run()
    #: takes them (and the plan then keeps no result alive).
    outcomes: Outcomes | None
    resume_at: int
    probe: ProbeRun | None
    #: The first item, still running in the process pool that measured it.
    sent: Sent | None
    auto: bool = False
    collect: bool = False  # return_exceptions
    timeout: float | None = None
    deadline: float | None = None  # time.monotonic() the first run must end by
    lock: threading.Lock = attrs.field(factory=threading.Lock)


def _check_count(name: str, value: object) -> None:
    """Check a count the caller gave (``None``, not given, is not checked)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def _check_timeout(timeout: object) -> float | None:
    """A timeout the caller gave, in seconds; ``None`` for one no wait can reach."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {type(timeout).__name__} {timeout!r}")
    if not timeout > 0:  # also rejects NaN
        raise ValueError(f"timeout must be more than 0 seconds, got {timeout}")
    if timeout >= threading.TIMEOUT_MAX:  # inf, or more than any wait can take: no limit
        return None
    return float(timeout)


def _check_arguments(  # noqa: PLR0913, PLR0917 - checks every argument of the public call
    fn: object, items: object, mode: object, workers: object, chunksize: object, classifier: object
) -> Sequence[Any]:
    iterator = _check_options(fn, items, mode, workers, chunksize, classifier)
    return items if iterator is None else list(iterator)  # type: ignore[return-value]


def _check_options(  # noqa: PLR0913, PLR0917 - checks every argument of the public call
    fn: object, items: object, mode: object, workers: object, chunksize: object, classifier: object
) -> Iterator[Any] | None:
    """Check the arguments; return an iterator over ``items``, or ``None`` when they are a list, tuple or range."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if workers is not None:
        _check_count("workers", workers)
    if chunksize is not None:
        _check_count("chunksize", chunksize)
    if classifier is not None and not callable(classifier):
        raise TypeError(f"classifier must be callable or None, got {type(classifier).__name__}")
    if isinstance(items, list | tuple | range):
        return None
    try:
        return iter(items)  # type: ignore[call-overload, no-any-return]
    except TypeError:
        raise TypeError(f"items must be iterable, got {type(items).__name__}") from None


def _measure_inline(
    fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, stop: int, budget: float = math.inf
) -> Measurement:
    """Run items from the first on in the calling thread, timing them.

    Stops before ``stop``, after a failure, or once ``budget`` seconds have passed. The
    items run in spans of 1, 4, 16 … items, with the clock read between spans: a check of
    items that turned out slow costs one item, and tiny ones run as fast as in a loop.
    """
    # Nothing else runs this call's items yet: no feed is needed to hand them out.
    clock = time.perf_counter
    t0, c0 = clock(), time.thread_time()
    done = run_timed(fn, items, outcomes, stop, budget=budget, growth=SPAN_GROWTH)
    wall, cpu = clock() - t0, time.thread_time() - c0
    return Measurement(
        items=done,
        completed=done,
        seconds=wall,
        item_wall=wall / done,
        item_cpu=min(cpu, wall) / done,
        cpu_share=min(1.0, cpu / wall) if wall > 0 else 0.0,
        gil_share=None,
        exact=True,
    )


def plan(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: Mode | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
) -> Plan:
    """Decide how ``fn`` should be mapped over ``items``, without running the rest.

    In ``"auto"`` mode the first items are run to measure the task (in up to two
    threads; in the calling thread first when an earlier call found the items tiny, or
    short and holding the GIL with a process pool warm for them, or the input is long;
    see docs/how-auto-decides.md);
    their results are kept, and the plan's first ``run()`` returns them in their place,
    so ``fn`` is still called exactly once per item.

    Args:
        fn: a one-argument function.
        items: any iterable; it is read to the end at once.
        mode: ``"auto"`` (measure and choose), ``"serial"``, ``"thread"`` or
            ``"process"``.
        workers: the number of threads or processes (default: chosen by the mode).
        chunksize: how many items a worker takes at a time (default: from the
            measured time per item); in process mode the last chunks are smaller, so
            that the workers finish together.
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``
            consulted before any other (see :func:`register_classifier`).
        return_exceptions: process every item, and return an exception raised by
            ``fn`` in its item's place instead of raising it (as ``asyncio.gather``).
        timeout: seconds the whole call may take, measuring included, counted from
            this call (a later ``run()`` gets what is left; a second ``run()`` gets
            the whole timeout again).

    Returns:
        The :class:`Plan`, with the mode, kind, sizing and a reason.

    Raises:
        TypeError: ``fn`` or ``classifier`` is not callable, ``items`` is not
            iterable, or ``workers``/``chunksize`` is not an int.
        ValueError: an unknown mode, ``workers``/``chunksize`` below 1, a timeout
            that is not positive, or a classifier that returned something that is not
            a kind.
        TimeoutError: ``timeout`` passed while the first items were measured.
    """
    started = time.monotonic()
    seconds = None if timeout is None else _check_timeout(timeout)
    sequence = _check_arguments(fn, items, mode, workers, chunksize, classifier)
    return plan_sequence(
        fn,
        sequence,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        seconds=seconds,
        deadline=None if seconds is None else started + seconds,
    )


def plan_sequence(  # noqa: PLR0912, PLR0913, PLR0915 - one flow, top to bottom, as the module docstring draws it
    fn: Callable[[Any], Any],
    sequence: Sequence[Any],
    mode: Mode | str,
    *,
    workers: int | None,
    chunksize: int | None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None,
    return_exceptions: bool,
    seconds: float | None,
    deadline: float | None,
    expected: int | None = None,
) -> Plan:
    """:func:`plan`, on arguments already checked, for the items of ``sequence``.

    ``expected``: how many items the call has in all, when ``sequence`` is only its head
    (a stream's, see ``_stream``): the cost model decides for that many; the measuring
    takes items from ``sequence`` alone, and keeps every result it got before a
    failure (a stream yields them).
    """
    count = len(sequence)
    planned = count if expected is None else max(count, expected)
    cpus = planning_cpus()
    io_cap = get_config().io_thread_cap()
    outcomes = Outcomes(count, collect=bool(return_exceptions), in_order=True, partial=expected is not None)

    def call(resume_at: int = 0, run: ProbeRun | None = None, sent: Sent | None = None) -> _Call:
        return _Call(
            fn,
            sequence,
            outcomes,
            resume_at,
            run,
            sent,
            auto=mode == "auto",
            collect=outcomes.collect,
            timeout=seconds,
            deadline=deadline,
        )

    decision = declared_kind(fn, sequence, classifier)
    declared = None if decision is None else decision.kind

    if mode != "auto":
        choice = forced_choice(
            mode,  # type: ignore[arg-type]
            kind=declared,
            count=planned,
            cpus=cpus,
            io_cap=io_cap,
            workers=workers,
            chunksize=chunksize,
        )
        reason = choice.reason if decision is None else f"{choice.reason}; kind {declared} from {decision.source}"
        return _make_plan(choice, declared, None, call(), reason)

    if count == 0:
        choice = Choice("serial", 1, 1, "no items")
        return _make_plan(choice, declared, None, call())

    memo = recall(fn)
    setting = _setting(declared, workers, chunksize, cpus=cpus, io_cap=io_cap, count=planned)
    inline: Measurement | None = None  # the calling thread's check, run for a verdict an earlier call kept
    if (
        deadline is None
        and memo is not None
        and memo.loop is not None
        and count > 1
        and memo.loop.covers(planned, memo.item_seconds, setting)
    ):
        # A loop verdict an earlier call kept covers the call, at the remembered item time:
        # check it on the first items, and keep to the loop at once if it covers them as
        # measured (as the flow below would, with fewer steps: a tiny call's overhead).
        inline = _measure_inline(fn, sequence, outcomes, count - 1, INLINE_CHECK_SECONDS)
        loop = _kept_loop(memo, planned - inline.items, inline, setting)
        if loop is not None and not outcomes.failed and not _changed(memo.item_seconds, inline.item_wall, DRIFT):
            known = declared or memo.kind
            return _make_plan(
                loop, known, inline, call(inline.items), _explained(inline, known, _from_memory(memo), loop)
            )

    fitness: list[tuple[str | None, int]] = []  # computed once, when first needed

    def decide(
        measurement: Measurement, resume_at: int, kind: TaskKind, *, free: bool = False, warm: bool = False
    ) -> Choice:
        """The cost model's choice for the items after ``resume_at``.

        ``free``: were pickling free; ``warm``: were a process pool warm for them.
        """
        left = planned - resume_at
        if outcomes.failed:
            return Choice("serial", 1, 1, f"item {outcomes.error_index} raised while measuring")
        if in_worker():
            return Choice("serial", 1, max(1, left), "called inside a concurrency_kit worker: runs serially")

        def cost_model(unpicklable: str | None, item_bytes: int) -> Choice:
            return choose(
                kind=kind,
                item_seconds=_item_seconds(kind, measurement, memo),
                item_cpu=_item_cpu(kind, measurement, memo) or 0.0,
                count=left,
                cpus=cpus,
                io_cap=io_cap,
                unpicklable=unpicklable,
                process_age=math.inf if warm else process_pool_age(workers or min(left, cpus)),
                server_started=forkserver_started(),
                bytes_per_item=item_bytes,
                workers=workers,
                chunksize=chunksize,
                processes_last=memo is not None and memo.kind is kind and memo.in_processes,
            )

        # Pickling the function and an item (which may be large) is only worth it when
        # processes would win were pickling free: it can only make them lose.
        unpickled = cost_model(None, 0)
        if free or unpickled.mode != "process":
            return unpickled
        if not fitness:
            fitness.append(_process_fitness(fn, sequence, outcomes, resume_at))
        return cost_model(*fitness[0])

    def measured_kind(m: Measurement) -> TaskKind:
        prior = None if memo is None else memo.kind
        return declared or kind_from_measurement(m.cpu_share, m.gil_share, prior, m.parallelism)

    run: ProbeRun | None = None
    short_cpu = False
    measurement: Measurement | None = None
    kind: TaskKind | None = None
    chosen: Choice | None = None
    resume_at = 0
    with_verdict: Memo | None = None
    covered = False  # by a loop verdict an earlier call kept, at about the remembered item time
    source: Reason = "the measurement" if decision is None else decision.source
    if count == 1 or in_worker():
        measurement, resume_at = _measure_inline(fn, sequence, outcomes, 1), 1
    elif deadline is None and (
        (
            memo is not None
            and (with_verdict := memo if inline is not None else _loop_expected(fn, memo, planned, setting, decide))
            is not None
        )
        or (memo is None and planned >= LONG_INPUT * io_cap)
        or (short_cpu := _short_cpu_for_warm_pool(fn, memo, declared, count=planned, workers=workers, cpus=cpus))
    ):
        # An earlier call found items this small, or the input is so long that its first
        # item costs a small share of the call even if slow: run the first items here,
        # for INLINE_CHECK_SECONDS, and keep to the loop if the cost model still says so.
        # Or it found short items computing, and a pool is warm for them: run them here
        # for QUICK_WINDOW, and go to the pool at once if they still compute, as long.
        # Not with a timeout: an item running in the calling thread could outlast it.
        budget = QUICK_WINDOW if short_cpu else INLINE_CHECK_SECONDS
        measurement = inline or _measure_inline(fn, sequence, outcomes, count - 1, budget)
        resume_at = measurement.items
        # One thread gives no GIL samples: the remembered kind stands, else the measured one.
        guessed = measured_kind(measurement) if memo is None else declared or memo.kind
        grew = memo is not None and measurement.item_wall > DRIFT * memo.item_seconds + 20e-6
        memo = with_verdict or memo  # with the verdict it may have kept
        loop = None if grew or outcomes.failed else _kept_loop(memo, planned - resume_at, measurement, setting)
        checked = loop or decide(measurement, resume_at, guessed)
        if outcomes.failed or (
            not grew and (checked.mode == "serial" or (short_cpu and agrees(guessed, measurement.cpu_share)))
        ):
            kind, chosen = guessed, checked
            if memo is not None:
                source = _from_memory(memo)
                covered = loop is not None and not _changed(memo.item_seconds, measurement.item_wall, DRIFT)
        else:  # a pool may pay, or the items grew: the probe measures the rest afresh
            measurement, memo = None, None
    sent: Sent | None = None
    if (
        measurement is None
        and deadline is None
        and memo is not None
        and _long_cpu_for_warm_pool(fn, memo, declared, count=planned, workers=workers, cpus=cpus)
    ):
        # An earlier call found long items holding the GIL, and a pool is warm for them:
        # the first item is measured in a worker. A probe thread here would take a CPU,
        # and the GIL from the threads that feed the pool, while the workers run the rest.
        try:
            seconds, sent = PROCESS_BACKEND.send_first(
                fn, sequence, outcomes, workers=workers or min(planned, cpus), within=QUICK_WINDOW
            )
        except UnpicklableTaskError:
            pass  # the probe measures it here instead
        else:
            measurement, resume_at = _in_pool(seconds, done=sent is None), 1
            kind, source = declared or memo.kind, _from_memory(memo, source)
    if measurement is None:
        start = resume_at
        prior = declared or (None if memo is None else memo.kind)

        def settles(m: Measurement) -> bool:
            kind = measured_kind(m)
            if kind is not prior and m.completed == 0 and partly_waits(kind, m.cpu_share, m.gil_share):
                # Items that computed first may be waiting now (unless declared, or as
                # an earlier call found them): an item's end tells.
                return False
            return _settled(decide(m, start + m.items, kind))

        try:
            run = probe(
                fn,
                sequence,
                outcomes,
                submit_daemon,
                on_gil_held=_prestarter(fn, declared, workers, cpus),
                settled=settles,
                # A kind known beforehand (declared, or from an earlier call) needs no GIL
                # samples: the probe ends as soon as the CPU share agrees and the choice stands.
                enough=None if prior is None else lambda m: agrees(prior, m.cpu_share) and settles(m),
                threads=1 if prior is TaskKind.CPU else PROBE_THREADS,
                deadline=deadline,
                start=start,
            )
        except TimeoutError:  # the probe's own: fn's exceptions are recorded, not raised
            raise _timed_out(seconds, outcomes) from None
        measurement, resume_at = run.measurement, run.resume_at
        if memo is not None:
            source = _from_memory(memo, source)
    if kind is None:
        kind = measured_kind(measurement)
    choice = chosen or decide(measurement, resume_at, kind)
    # Once run() has the rest, where items were still running; and not for a loop that a
    # kept verdict covers at about the remembered time: the verdict holds for these items
    # (on a busy machine their time swings, and the write would cost a tiny call more
    # than its own decision).
    if not covered and not outcomes.failed and not in_worker() and measurement.exact:
        kept = None if memo is None or memo.loop is None or memo.loop.setting != setting else memo.loop
        fresh = _memo(kind, measurement, kept)
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
            remember(fn, fresh)
    if choice.mode == "thread" and kind is TaskKind.IO:
        _warm_for_next_calls(fn, decide(measurement, resume_at, kind, warm=True))

    return _make_plan(
        choice, kind, measurement, call(resume_at, run, sent), _explained(measurement, kind, source, choice)
    )


#: Each span of the calling thread's timed check is this many times the last.
SPAN_GROWTH = 4
#: When an earlier call says items are tiny, this much of the new call's work is run in
#: the calling thread first, timed, to check the estimate before the loop goes on.
INLINE_CHECK_SECONDS = 0.0001
#: Items that now take this many times longer than remembered (plus 20 µs) have
#: drifted: the function is measured afresh, its kind too.
DRIFT = 4.0
#: An input of at least this many times the most threads an I/O-bound call may get
#: (``max_io_workers``, else 512) is checked in the calling thread first, as
#: remembered tiny items are: starting probe threads costs more than the whole loop when
#: the items are tiny, and a slow first item delays a call that long by at most a tenth
#: (even I/O items, a thread each, take that many rounds).
LONG_INPUT = 10


#: A measured item time within this factor of the remembered one is not remembered anew
#: (nothing that depends on it moves much; a tiny call saves the write).
SAME_TIME = 1.25


def _changed(remembered: float, seconds: float, factor: float = SAME_TIME) -> bool:
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
        # remembered anew: the verdict covers items DRIFT times as long where it holds.
        roomy = decide(_as_measured(memo, DRIFT), 0, memo.kind, free=True).mode == "serial"
        most = memo.item_seconds * DRIFT if roomy else memo.item_seconds
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


def _memo(kind: TaskKind, m: Measurement, loop: LoopVerdict | None = None) -> Memo:
    """What to remember of exact figures ``m`` of items of ``kind``."""
    return Memo(kind, _item_seconds(kind, m), loop, _item_cpu(kind, m))


def _short_cpu_for_warm_pool(  # noqa: PLR0913 - what the check depends on
    fn: Callable[[Any], Any],
    memo: Memo | None,
    declared: TaskKind | None,
    *,
    count: int,
    workers: int | None,
    cpus: int,
) -> bool:
    """Whether an earlier call found ``fn``'s items computing, shorter than QUICK_WINDOW, and a pool is warm.

    Then the calling thread checks the first items itself: a probe thread, which the
    calling thread watches, holds the GIL for a switch interval (5 ms) before the check
    can end, while the warm workers wait. An item longer than remembered runs whole
    before the check ends, so only short ones are checked so.
    """
    if memo is None or (declared or memo.kind) is not TaskKind.CPU or memo.item_seconds > QUICK_WINDOW:
        return False
    return not in_worker() and process_pool_ready_for(workers or min(count, cpus), fn)


def _long_cpu_for_warm_pool(  # noqa: PLR0913 - what the check depends on
    fn: Callable[[Any], Any],
    memo: Memo,
    declared: TaskKind | None,
    *,
    count: int,
    workers: int | None,
    cpus: int,
) -> bool:
    """Whether an earlier call found ``fn``'s items computing, longer than QUICK_WINDOW, and a pool is warm.

    Then the first item is measured in a worker (see :meth:`ProcessBackend.send_first`).
    """
    if (declared or memo.kind) is not TaskKind.CPU or memo.item_seconds <= QUICK_WINDOW or cpus < 2:
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
    declared: TaskKind | None, workers: int | None, chunksize: int | None, *, cpus: int, io_cap: int, count: int
) -> tuple[object, ...] | None:
    """What the cost model's choice depends on besides the items: a verdict's setting.

    ``None`` while a process pool is warming up (its start-up cost falls by the moment).
    """
    age = process_pool_age(workers or max(1, min(count, cpus)))
    if age is None:
        pool = "server" if forkserver_started() else "none"
    elif age >= PROCESS_COLD_START:
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


def _item_seconds(kind: TaskKind, m: Measurement, memo: Memo | None = None) -> float:
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
    seconds = m.item_wall if kind is TaskKind.IO else max(m.item_cpu, m.item_wall / PROBE_THREADS)
    if not m.exact and m.completed == 0:
        seconds = max(2 * seconds, memo.item_seconds if memo is not None and memo.kind is kind else 0.0)
    elif not m.exact:
        seconds *= 1 + (m.items - m.completed) / m.items
    alone = memo.item_alone if kind is TaskKind.IO and memo is not None and memo.kind is kind else None
    return seconds if alone is None else max(seconds, alone)


def _item_cpu(kind: TaskKind, m: Measurement, memo: Memo | None = None) -> float | None:
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


def _final_kind(kind: TaskKind, final: Measurement) -> TaskKind:
    """The kind to remember of items decided to be ``kind`` while they ran, now that ``final`` has their figures.

    Computing items that the GIL monitor did not see holding the GIL, but that waited
    most of their time once done, are I/O-bound (they computed first, then waited): a
    call that misread them does not teach the next ones.
    """
    if kind is TaskKind.IO or not agrees(TaskKind.IO, final.cpu_share):
        return kind
    return TaskKind.IO if final.gil_share is None or final.gil_share < GIL_BOUND_SHARE else kind


def _io_memo(  # noqa: PLR0913 - the call's figures, by name
    memo: Memo, earlier: Memo | None, plan: Plan, *, count: int, seconds: float, cpu: float, warm: bool
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
    """What the probe calls when it sees the GIL held: warm a process pool meanwhile."""
    if cpus == 1 or declared in (TaskKind.IO, TaskKind.GIL_FREE) or why_not_picklable(fn) is not None:
        return None
    return lambda: prestart_process_pool(workers or cpus, fn)


def _process_fitness(
    fn: Callable[[Any], Any], items: Sequence[Any], outcomes: Outcomes, resume_at: int
) -> tuple[str | None, int]:
    """Why processes cannot run this (or None), and the pickled bytes per item and result."""
    reason = why_not_picklable(fn)
    if reason is not None:
        return reason, 0
    sample = min(resume_at, len(items) - 1)  # a stream's head may be measured whole
    item_size = pickled_size(items[sample])
    if item_size is None:
        return f"item {sample} cannot be pickled", 0
    values = outcomes.values  # the first item's result, where it has one
    result = values[0] if values else EMPTY
    result_size = pickled_size(result) if result is not EMPTY else 0
    return None, item_size + (result_size or 0)


def _make_plan(
    choice: Choice, kind: TaskKind | None, measurement: Measurement | None, call: _Call, reason: Reason | None = None
) -> Plan:
    """The plan for ``choice``, with ``reason`` (default: the choice's own)."""
    return Plan(
        mode=choice.mode,
        kind=kind,
        workers=choice.workers,
        chunksize=choice.chunksize,
        reason=choice.why if reason is None else reason,
        measurement=measurement,
        runner=_execute,
        state=call,
    )


def _execute(plan: Plan) -> list[Any]:
    call: _Call = plan._state  # noqa: SLF001 - the plan's own runner
    with call.lock:
        taken, run, sent = call.outcomes, call.probe, call.sent
        call.outcomes = call.probe = call.sent = None
    if sent is not None and plan.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    if taken is not None:
        outcomes, resume_at, deadline = taken, call.resume_at, call.deadline
    else:  # a second run() runs everything again, with the whole timeout
        outcomes = Outcomes(len(call.items), collect=call.collect, in_order=True)
        resume_at = 0
        deadline = None if call.timeout is None else time.monotonic() + call.timeout
    if outcomes.failed:
        pass  # an item failed while it was measured: nothing more starts
    elif plan.mode == "serial" and deadline is None and outcomes.in_order:
        # A loop's items in order, which nothing but the calling thread runs: nothing can
        # stop the call meanwhile, so the rest run at once, as a list comprehension would.
        run_items(call.fn, call.items, outcomes, resume_at, len(call.items))
    else:
        _run_rest(plan, call, outcomes, resume_at=resume_at, deadline=deadline, run=run, sent=sent)
    if outcomes.error is not None:
        raise _noted(outcomes.error, outcomes.error_index, call.items)
    return outcomes.values


def _run_rest(  # noqa: PLR0913 - what _execute took from the plan
    plan: Plan,
    call: _Call,
    outcomes: Outcomes,
    *,
    resume_at: int,
    deadline: float | None,
    run: ProbeRun | None,
    sent: Sent | None = None,
) -> None:
    """Run the items from ``resume_at`` on in the plan's mode; finish the probe's (``run``) and the pool's."""
    feed = Feed(outcomes, resume_at, len(call.items), in_order=plan.mode == "serial")
    age = process_pool_age(plan.workers) if plan.mode == "process" and plan.kind is TaskKind.IO else None
    try:
        if not outcomes.failed and feed.remaining:
            try:
                _run_backend(plan, call, feed, deadline, run, sent=sent)
            except UnpicklableTaskError:
                if not call.auto:
                    raise
                # Auto checked the function and one item; a later item would not pickle.
                # The items not sent run here instead, as the loop would have run them.
                _run_missing(call, outcomes, resume_at, deadline)
        waited = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not outcomes.failed and run is not None:
            if not run.join(waited):  # the items the probe took
                raise TimeoutError
            if not run.measurement.exact and plan.kind is not None and not outcomes.failed:
                # The plan was made on lower bounds; now the probe's items are done.
                final = run.final()
                memo = _memo(_final_kind(plan.kind, final), final)
                if plan.kind is TaskKind.IO:
                    memo = _io_memo(
                        memo,
                        recall(call.fn),
                        plan,
                        count=len(call.items) - run.first,
                        seconds=time.perf_counter() - run.started,
                        cpu=feed.cpu + final.item_cpu * final.completed,
                        warm=age is not None and age >= PROCESS_COLD_START,
                    )
                remember(call.fn, memo)
    except TimeoutError:  # only the backends' and the probe's own: fn's exceptions are recorded, not raised
        raise _timed_out(call.timeout, outcomes) from None


def _run_backend(  # noqa: PLR0913 - what the run has in flight
    plan: Plan, call: _Call, feed: Feed, deadline: float | None, run: ProbeRun | None, *, sent: Sent | None
) -> None:
    """Run the feed's items in the plan's mode.

    ``run``: the probe, whose threads may still run items; ``sent``: the first item, still
    running in the process pool (then the plan's mode is processes, with no deadline).
    """
    if call.auto and plan.mode == "process" and deadline is None:
        # Auto turned the loop down: the calling thread runs items until the pool is up,
        # so that auto never does much worse than that loop while a cold pool starts
        # (once the probe's threads are through the items they took).
        PROCESS_BACKEND.run_helping(
            call.fn,
            call.items,
            feed,
            workers=plan.workers,
            chunksize=plan.chunksize,
            others=() if run is None else run.threads,
            others_compute=plan.kind is TaskKind.CPU,
            sent=sent,
        )
        return
    BACKENDS[plan.mode].run(
        call.fn, call.items, feed, workers=plan.workers, chunksize=plan.chunksize, deadline=deadline
    )


def _timed_out(timeout: float | None, outcomes: Outcomes) -> TimeoutError:
    done = sum(value is not EMPTY for value in outcomes.values)
    return TimeoutError(
        f"the call did not finish within its timeout of {timeout:g} s ({done} of {outcomes.total} items "
        "done); worker processes running its items were stopped; an item running in a thread finishes in the "
        "background (threads cannot be stopped)"
    )


def _noted(error: BaseException, index: int, items: Sequence[Any]) -> BaseException:
    """Add a note naming the item to ``error`` (once)."""
    return noted(error, index, items[index])


def _run_missing(call: _Call, outcomes: Outcomes, start: int, deadline: float | None) -> None:
    """Run, in the calling thread, every item from ``start`` on that has no result yet."""
    values, index, total = outcomes.dense(), start, len(call.items)
    while index < total and not outcomes.failed:
        if values[index] is not EMPTY:
            index += 1
            continue
        stop = index
        while stop < total and values[stop] is EMPTY:
            stop += 1
        feed = Feed(outcomes, index, stop)
        BACKENDS["serial"].run(call.fn, call.items, feed, workers=1, chunksize=stop - index, deadline=deadline)
        index = stop


def shutdown(wait: bool = True) -> None:  # noqa: FBT001, FBT002 - mirrors Executor.shutdown
    """Stop the warm pools and forget what earlier calls measured; later calls start afresh.

    The pools also stop when the interpreter exits.

    Args:
        wait: wait for running work and for the workers to exit.
    """
    stop_pools(wait)
    forget_all()


def run_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: Mode | str = "auto",
    *,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
) -> list[R]:
    """Return ``[fn(item) for item in items]``, computed the fastest way.

    ``mode="auto"`` measures the first items and picks a plain loop, threads or
    processes (see :func:`plan`); ``run_parallel(...)`` is ``plan(...).run()``.

    Args:
        fn: a one-argument function. In process mode it must be picklable (defined at
            module level); in auto mode it may be called from two threads at once
            while it is measured.
        items: any iterable.
        mode: ``"auto"``, ``"serial"``, ``"thread"`` or ``"process"``.
        workers: the number of threads or processes.
        chunksize: how many items a worker takes at a time (at most: in process
            mode the last chunks shrink, so that the workers finish together).
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.
        return_exceptions: process every item and return each exception ``fn``
            raised in its item's place, instead of raising the first.
        timeout: seconds the whole call may take. Worker processes still running
            its items are then killed (the pool is rebuilt by the next call);
            threads cannot be killed, so an item running in a thread finishes in the
            background, but the call returns on time and nothing new starts.
        progress: ``True`` for a tqdm progress bar, or a callable told ``(done,
            total)`` in the calling thread (see :func:`iter_parallel`). With it the
            call is ``list(iter_parallel(...))``, which returns the same.

    Returns:
        The results, in input order (with ``return_exceptions``, exceptions in the
        places of the items that raised them).

    Raises:
        TypeError: bad arguments (see :func:`plan`).
        ValueError: bad arguments (see :func:`plan`).
        UnpicklableTaskError: ``mode="process"`` with a function, item or result that
            cannot be pickled.
        WorkerCrashedError: a worker process died; the error names the items it
            was running (with ``return_exceptions``, the item that kills its worker
            gets this error in its place and the others complete).
        TimeoutError: ``timeout`` passed.
        KeyboardInterrupt: Ctrl-C; worker processes running the call's items are
            killed, queued items never start.
        Exception: the first exception ``fn`` raised, with its own type and message,
            a note naming the item (``add_note``) and, from a worker process, the
            worker's traceback as ``__cause__``. Nothing new starts after it.
    """
    if progress is not None and progress is not False:
        listed = items if isinstance(items, list | tuple | range) else list(items)  # a length to count to
        return list(
            iter_parallel(
                fn,
                listed,
                mode,
                workers=workers,
                chunksize=chunksize,
                classifier=classifier,
                return_exceptions=return_exceptions,
                timeout=timeout,
                progress=progress,
            )
        )
    return plan(
        fn,
        items,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        timeout=timeout,
    ).run()


#: The head of an input that auto measures and plans on: at most this many items (as
#: many as ``max_in_flight`` allows). The probe takes a few items to tens of
#: milliseconds' worth; the head is all there is to take from before the plan is made.
STREAM_HEAD = 64
#: How many items an input of unknown length, longer than its head, is planned for.
#: More items only favour pools, and a stream's pool starts once: a long stream kept in
#: a loop loses up to the CPUs' count in time, a short one sent to a pool loses its
#: start-up, once.
UNSIZED_ITEMS = 1_000_000
#: A stream's default window: this many chunks a worker (one running, one queued) ...
STREAM_CHUNKS_PER_WORKER = 2
#: ... of this many items at most in a forced mode over an input of unknown length,
#: where nothing measured sizes them.
FORCED_STREAM_CHUNK = 16


def iter_parallel(  # noqa: PLR0913 - the public signature
    fn: Callable[[T], R],
    items: Iterable[T],
    mode: Mode | str = "auto",
    *,
    ordered: bool = True,
    workers: int | None = None,
    chunksize: int | None = None,
    classifier: Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None] | None = None,
    return_exceptions: bool = False,
    timeout: float | None = None,
    max_in_flight: int | None = None,
    progress: bool | Callable[[int, int | None], object] | None = None,
) -> ResultStream[R]:
    """Yield ``fn(item)`` for every item of ``items``, as the results come, reading ``items`` lazily.

    In ``"auto"`` mode the head of the input (:data:`STREAM_HEAD` items at most) is
    measured and planned on as :func:`run_parallel` plans a list, for the number of
    items the input has (``len(items)`` when it has one; many when it has none and
    is longer than its head); those results are kept, and the rest stream through the
    mode chosen. Each item runs exactly once.

    Args:
        fn: a one-argument function (picklable for process mode, as in :func:`run_parallel`).
        items: any iterable, endless ones included; read as the stream needs items.
        mode: ``"auto"``, ``"serial"``, ``"thread"`` or ``"process"``.
        ordered: results in input order; with ``False``, as they finish (a chunk's
            results together, in its order).
        workers: the number of threads or processes.
        chunksize: how many items a worker takes at a time.
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.
        return_exceptions: yield each exception ``fn`` raised in its item's place and
            go on, instead of raising the first.
        timeout: seconds the whole iteration may take, counted from this call; worker
            processes still running its items are then killed.
        max_in_flight: the most items taken from ``items`` and not yet yielded, at any
            moment (workers wait for a slow consumer rather than pile up results).
            Default: two chunks a worker, and at least the head auto measures (64
            items); a loop takes one item at a time.
        progress: ``True`` for a tqdm progress bar on stderr (the ``progress`` extra:
            ``pip install "concurrency_kit[progress]"``), described by the mode chosen;
            or a callable, called ``(done, total)`` in the consuming thread as each
            result is yielded (``total`` is ``None`` when ``items`` has no length).
            It counts items, whatever the chunks; the last call counts every result.

    Returns:
        The results, as a :class:`ResultStream`: iterate it, ``close()`` it, or use it
        in a ``with`` block. Closing it early (or dropping it) stops taking items,
        cancels what has not started and kills worker processes running its items;
        an item running in a thread finishes in the background.

    Raises:
        TypeError: bad arguments (see :func:`plan`), ``max_in_flight`` not an int,
            or ``progress`` neither a bool nor a callable.
        ImportError: ``progress=True`` without tqdm installed.
        ValueError: bad arguments (see :func:`plan`), or ``max_in_flight`` below 1.
        UnpicklableTaskError: ``mode="process"`` with a function, item or result that
            cannot be pickled.
        WorkerCrashedError: a worker process died (see :func:`run_parallel`).
        TimeoutError: ``timeout`` passed, measuring included.
        Exception: while iterating, the first exception ``fn`` raised (in order: after
            the results before its item), noted with its item; nothing new starts.
    """
    started = time.monotonic()
    seconds = None if timeout is None else _check_timeout(timeout)
    listed = _check_options(fn, items, mode, workers, chunksize, classifier)
    if max_in_flight is not None:
        _check_count("max_in_flight", max_in_flight)
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable, got {type(progress).__name__}")
    source: Iterator[Any] = iter(items) if listed is None else listed
    size = len(items) if isinstance(items, Sized) else None
    head: list[Any] = []
    expected = UNSIZED_ITEMS if size is None else size
    if mode == "auto":
        wanted = STREAM_HEAD if max_in_flight is None else min(STREAM_HEAD, max_in_flight)
        head = list(islice(source, wanted))
        if len(head) < wanted:
            expected = len(head)
    chosen = plan_sequence(
        fn,
        head,
        mode,
        workers=workers,
        chunksize=chunksize,
        classifier=classifier,
        return_exceptions=return_exceptions,
        seconds=seconds,
        deadline=None if seconds is None else started + seconds,
        expected=expected,
    )
    call: _Call = chosen._state  # noqa: SLF001 - the plan made here
    first, collect = _measured_units(chosen, call, head)
    chunk = chosen.chunksize
    if mode != "auto" and chunksize is None and size is None:
        chunk = min(chunk, FORCED_STREAM_CHUNK)
    told: Progress | None = None
    if progress is True:
        told = ProgressBar(size, chosen.mode)
    elif callable(progress):
        told = progress
    if chosen.mode == "serial":
        if listed is None:  # a list, tuple or range: from where the measuring stopped, no copy
            ahead: Sequence[Any] | None = items  # type: ignore[assignment]
            rest: Iterator[Any] = iterate_from(items, call.resume_at)  # type: ignore[arg-type]
        else:
            ahead, rest = None, chain(head[call.resume_at :], source)
        results: Iterator[Any] = loop(
            fn,
            ahead,
            rest,
            start=call.resume_at,
            first=first,
            collect=collect,
            progress=told,
            total=size,
            timeout=seconds,
            deadline=call.deadline,
        )
        return ResultStream(results, chosen.mode, chosen.reason)
    runner: Runner
    if chosen.mode == "thread":
        runner = ThreadRunner(fn, chosen.workers, collect=collect)
    else:
        runner = ProcessRunner(fn, chosen.workers, collect=collect, fallback=mode == "auto")
    window = max_in_flight or max(len(head), STREAM_CHUNKS_PER_WORKER * chosen.workers * chunk)
    results = stream(
        runner,
        chain(head[call.resume_at :], source),
        start=call.resume_at,
        first=first,
        ordered=ordered,
        collect=collect,
        window=window,
        chunksize=chunk,
        workers=chosen.workers,
        total=size,
        progress=told,
        timeout=seconds,
        deadline=call.deadline,
    )
    return ResultStream(results, chosen.mode, chosen.reason)


def _measured_units(chosen: Plan, call: _Call, head: list[Any]) -> tuple[list[tuple[Unit, Future[Any] | None]], bool]:
    """The stream's first units: the items ``chosen`` measured of ``head``, each with what it is done with.

    Taken from the plan (its first ``run()`` would have them): the first item still
    running in a worker, and the items the measuring ran (the probe's threads may still
    run some). Also: whether exceptions are collected.
    """
    with call.lock:
        outcomes, run, sent = call.outcomes, call.probe, call.sent
        call.outcomes = call.probe = call.sent = None
    assert outcomes is not None
    if sent is not None and chosen.mode != "process":
        sent.finish()  # nothing else takes it over
        sent = None
    first: list[tuple[Unit, Future[Any] | None]] = []
    measured_from = 0
    if sent is not None:
        future, pool = sent.take()
        unit = Unit(0, head[:1])
        unit.pool = pool
        first.append((unit, future))
        measured_from = 1
    if call.resume_at > measured_from:
        unit = Unit(measured_from, head[measured_from : call.resume_at])
        unit.read = _measured_outcomes(chosen, call, outcomes, run, measured_from)
        first.append((unit, None if run is None else _all_done(run.threads)))
    return first, outcomes.collect


def _measured_outcomes(
    chosen: Plan, call: _Call, outcomes: Outcomes, run: ProbeRun | None, first: int
) -> Callable[[Future[Any] | None], list[tuple[bool, Any]]]:
    """What reads the outcomes of the items a stream's plan measured (``first …``), once the probe is done."""

    def read(_: Future[Any] | None) -> list[tuple[bool, Any]]:
        if run is not None:
            run.join()  # re-raises what escaped a probe thread
            if not run.measurement.exact and chosen.kind is not None and not outcomes.failed:
                final = run.final()  # the plan was made on lower bounds: remember the real figures
                remember(call.fn, _memo(_final_kind(chosen.kind, final), final))
        values = outcomes.dense()
        stop = call.resume_at if not outcomes.failed else min(call.resume_at, outcomes.error_index)
        read_: list[tuple[bool, Any]] = [(True, values[index]) for index in range(first, stop)]
        if outcomes.failed and outcomes.error is not None and first <= outcomes.error_index < call.resume_at:
            read_.append((False, outcomes.error))
        return read_

    return read


def _all_done(futures: Sequence[Future[Any]]) -> Future[None]:
    """A future done once every one of ``futures`` is."""
    done: Future[None] = Future()
    left = [len(futures)]
    lock = threading.Lock()

    def one(_: Future[Any]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            done.set_result(None)

    if not futures:
        done.set_result(None)
    for future in futures:
        future.add_done_callback(one)
    return done
