"""The plan of a call, and the cost model that picks it.

The cost model compares the estimated time of a plain loop with that of the one pool
suited to the task's kind, from the per-item time the probe measured:

========  ============================  =========================================
kind      candidate                      estimate
========  ============================  =========================================
io        threads, one per item (capped) ⌈n / w⌉·t + thread start-up
gil_free  threads, one per usable CPU    n·t / w + thread start-up
cpu       processes, one per usable CPU  n·t / w + chunk round trips + pickled
                                         bytes + pool start-up when cold
========  ============================  =========================================

A pool is chosen only when it beats the loop by :data:`MIN_GAIN`. The figures below are
conservative readings from a 2-core Linux machine; they only need to be right within a
factor of two, since the margin between the options is wide wherever the choice matters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, final

import attrs

from ._classify import TaskKind

if TYPE_CHECKING:
    from ._probe import Measurement

__all__ = [
    "ASYNC_WORKERS",
    "Choice",
    "Mode",
    "Plan",
    "Reason",
    "alternatives",
    "async_choice",
    "choose",
    "executor_choice",
    "forced_choice",
    "render",
]

#: A concrete way of running a call (``"executor"``: on an executor the caller gave;
#: ``"async"``: coroutines on an event loop).
Mode = Literal["serial", "thread", "process", "executor", "async"]

#: A pool must beat the loop by this fraction of the loop's time to be chosen.
MIN_GAIN = 0.10
#: Starting (or waking) one pool thread.
THREAD_START = 100e-6
#: Threads a forced ``mode="thread"`` call gets for work of no declared computing kind:
#: nothing measured sizes a round, so a fixed number (``max_io_workers``, when lower).
FORCED_THREADS = 64
#: One chunk's round trip through a warm process pool.
PROCESS_ROUND_TRIP = 0.5e-3
#: Starting a process pool when none is warm: the forkserver and the workers ...
PROCESS_COLD_START = 0.18
#: ... or the workers alone, from a forkserver this process already started.
PROCESS_RESTART = 0.04
#: Pickling, piping and unpickling one byte, both ways.
BYTE_COST = 2e-9
#: What a process pool costs per item, however small: its outcome is pickled on its own
#: and unpickled in the calling process, one at a time (about 1-1.5 µs measured here).
PROCESS_ITEM = 1e-6
#: A process-mode chunk should take about this long (tens of milliseconds) ...
PROCESS_CHUNK_SECONDS = 0.025
#: ... a thread-mode chunk of CPU work about this long ...
THREAD_CHUNK_SECONDS = 0.002
#: ... and every worker should get at least this many chunks, to balance load.
CHUNKS_PER_WORKER = 4


#: Why a choice was made: the text, or what writes it when first asked for. Formatting
#: figures costs a tiny call tens of microseconds when the caches are cold (more than
#: planning it), and most reasons are never read.
Reason = str | Callable[[], str]


def render(reason: Reason) -> str:
    """The text of ``reason``."""
    return reason if isinstance(reason, str) else reason()


@final
@attrs.frozen
class Choice:
    """A mode with its sizing and the reason for it (``why``, written by :attr:`reason`)."""

    mode: Mode
    workers: int
    chunksize: int
    why: Reason = attrs.field(repr=render, eq=render)
    #: True when the loop won on estimated cost alone (not for a structural reason),
    #: so a longer measurement could change the choice.
    by_cost: bool = False

    @property
    def reason(self) -> str:
        """Why this mode, with the estimates."""
        return render(self.why)


def format_seconds(value: float) -> str:
    """Seconds for a person: ``1.23 s``, ``4.5 ms`` or ``67.8 µs``."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.1f} µs"


def _chunks(count: int, workers: int, item_seconds: float, target: float) -> int:
    """Items per chunk: about ``target`` seconds, yet several chunks per worker."""
    if count <= 0:
        return 1
    by_time = math.ceil(target / item_seconds) if item_seconds > 0 else count
    by_balance = math.ceil(count / (CHUNKS_PER_WORKER * workers))
    return max(1, min(by_time, by_balance))


def io_threads(count: int, item_seconds: float, cap: int) -> int:
    """Threads for ``count`` waits of ``item_seconds`` each: what makes the fewest rounds pay.

    ``w`` threads take ``⌈count / w⌉`` rounds of waits, and cost :data:`THREAD_START`
    each: one thread per item, unless fewer, in more rounds, cost less in all (tens of
    thousands of short waits), and never more than ``cap``. Of the thread counts that
    make the same number of rounds, the fewest: 1,000 items of 50 ms under a cap of 512
    get two rounds of 500.
    """
    most = max(1, min(count, cap))
    threads = math.ceil(count / math.ceil(count / most))
    best, cost = threads, math.inf
    while True:  # each number of rounds once, from the fewest: at most 2·√count of them
        rounds = math.ceil(count / threads)
        if rounds * item_seconds >= cost:
            return best  # fewer threads cannot make up for these rounds' waits alone
        this = rounds * item_seconds + threads * THREAD_START
        if this <= cost:
            best, cost = threads, this
        if threads == 1:
            return best
        threads = min(threads - 1, math.ceil(count / (rounds + 1)))  # the most that take a round more


def describe_measurement(m: Measurement) -> str:
    """One clause with the probe's figures."""
    bound = "" if m.exact else "≥ "
    if m.in_pool:
        return f"measured {m.items} item(s) in a worker process: {bound}{format_seconds(m.item_wall)} per item"
    gil = "GIL held n/a" if m.gil_share is None else f"GIL held {m.gil_share:.0%}"
    side = "" if m.parallelism is None else f", {m.parallelism:.2f} CPUs busy with 2 items at once"
    return (
        f"measured {m.items} item(s) in {format_seconds(m.seconds)}: {bound}{format_seconds(m.item_wall)} per item, "
        f"CPU share {m.cpu_share:.2f}, {gil}{side}"
    )


def choose(  # noqa: PLR0913 - every input of the cost model, by name
    *,
    kind: TaskKind,
    item_seconds: float,
    count: int,
    cpus: int,
    io_cap: int,
    unpicklable: str | None,
    process_age: float | None,
    bytes_per_item: int,
    server_started: bool = False,
    workers: int | None = None,
    chunksize: int | None = None,
    item_cpu: float = 0.0,
    processes_last: bool = False,
) -> Choice:
    """Pick a mode for ``count`` items of ``item_seconds`` each (serial time).

    Args:
        kind: the task's kind.
        item_seconds: estimated time of one item run alone.
        count: how many items are left to run.
        cpus: usable CPUs.
        io_cap: the most threads an I/O-bound call gets (see :func:`io_threads`).
        unpicklable: why the task cannot go to processes, or ``None``.
        process_age: seconds since a large enough process pool was started, or
            ``None`` when there is none.
        server_started: whether a forkserver is already running, so that new
            workers start fast.
        bytes_per_item: pickled size of an item plus its result.
        workers: the caller's worker count, if given.
        chunksize: the caller's chunk size, if given.
        item_cpu: of an I/O item's time, the seconds it computes (holding the GIL, as
            Python code does): threads overlap the waits but take turns for these.
            When taking turns bounds the threads, and processes, one per CPU, would
            finish sooner still, the items go to processes (unless the caller gave
            ``workers``).
        processes_last: whether the function's last call ran such items in processes.
            Near the point where processes and threads break even, it stays there
            unless threads win clearly, as it moves there only when processes do: the
            computing measured swings by a third from call to call on a busy machine,
            which would otherwise flip the mode call by call.

    Returns:
        The choice, with a reason that quotes the estimates.
    """
    serial = count * item_seconds
    loop = max(1, count)
    if count <= 1:
        return Choice("serial", 1, loop, f"{count} item(s) left: nothing to run side by side")
    mode: Mode
    if kind is TaskKind.IO:
        mode, w = "thread", workers or io_threads(count, item_seconds, io_cap)
        chunk = chunksize or 1
        estimate, turns, waits, label = _io_threads_estimate(count, item_seconds, item_cpu, w)
        if turns > waits and unpicklable is None and workers is None and cpus > 1:
            # A process a CPU: each computes its items' share side by side with the others.
            w_p = min(count, cpus)
            by_process, chunk_p, label_p = _process_choice(
                count=count,
                item_seconds=item_seconds,
                w=w_p,
                chunksize=chunksize,
                process_age=process_age,
                server_started=server_started,
                bytes_per_item=bytes_per_item,
                rounds=True,
            )
            # Against the threads' work alone (their start is paid once, in a warm pool),
            # so that processes must win clearly, or, once there, threads must. On two
            # CPUs processes run at most two items at a time: they win only for two
            # items, or items that compute 40 % of their time or more.
            if by_process < (turns / (1 - MIN_GAIN) if processes_last else turns * (1 - MIN_GAIN)):
                label = f"{label_p}, against ≈ {format_seconds(estimate)} on {label}"
                mode, estimate, w, chunk = "process", by_process, w_p, chunk_p
    elif cpus == 1 and workers is None:
        return Choice("serial", 1, loop, "one usable CPU: CPU work gains nothing from a pool")
    elif kind is TaskKind.GIL_FREE:
        mode, w = "thread", workers or min(count, cpus)
        chunk = chunksize or _chunks(count, w, item_seconds, THREAD_CHUNK_SECONDS)
        estimate, label = _gil_free_threads_estimate(count, item_seconds, w)
    elif unpicklable is not None:
        return Choice(
            "serial", 1, loop, f"processes are not an option ({unpicklable}) and threads cannot share the GIL"
        )
    else:
        mode, w = "process", workers or min(count, cpus)
        estimate, chunk, label = _process_choice(
            count=count,
            item_seconds=item_seconds,
            w=w,
            chunksize=chunksize,
            process_age=process_age,
            server_started=server_started,
            bytes_per_item=bytes_per_item,
        )

    def figures() -> str:
        return f"{count} item(s) left: ≈ {format_seconds(serial)} in a loop vs ≈ {format_seconds(estimate)} on {label}"

    if estimate < serial * (1 - MIN_GAIN):
        return Choice(mode, w, chunk, figures)
    return Choice("serial", 1, loop, lambda: f"{figures()}; too little work to pay for a pool", by_cost=True)


def alternatives(  # noqa: PLR0913 - every input of the cost model's estimates, by name
    *,
    kind: TaskKind,
    item_seconds: float,
    count: int,
    cpus: int,
    io_cap: int,
    unpicklable: str | None,
    process_age: float | None,
    bytes_per_item: int,
    server_started: bool = False,
    workers: int | None = None,
    chunksize: int | None = None,
    item_cpu: float = 0.0,
) -> list[tuple[Mode, float, str]]:
    """Every estimate :func:`choose` weighs for these inputs: the loop's, then each pool's.

    For ``python -m concurrency_kit explain``, which shows a user the options auto had.
    The arguments are :func:`choose`'s (all but ``processes_last``, which moves only
    the bar a pool must clear, never an estimate). The estimates are the cost model's
    own: both take them from the same helpers (threads for waits, threads for GIL-free
    work, processes), and tests/test_cli.py checks that they agree with the figures
    :func:`choose` quotes.

    Args:
        kind: the task's kind.
        item_seconds: estimated time of one item run alone.
        count: how many items are left to run.
        cpus: usable CPUs.
        io_cap: the most threads an I/O-bound call gets.
        unpicklable: why the task cannot go to processes, or ``None``.
        process_age: seconds since a large enough process pool was started, or ``None``.
        bytes_per_item: pickled size of an item plus its result.
        server_started: whether a forkserver is already running.
        workers: the caller's worker count, if given.
        chunksize: the caller's chunk size, if given.
        item_cpu: of an I/O item's time, the seconds it computes.

    Returns:
        ``(mode, estimated seconds, label)`` for the plain loop (mode ``"serial"``,
        always first), then for each pool :func:`choose` compares with it: threads
        for ``io`` and ``gil_free`` items, processes for ``cpu`` items and for ``io``
        items whose computing, in turns, outweighs their waits. Only the loop where
        :func:`choose` decides without estimating: one item or none, one usable CPU
        for computing items, or processes ruled out (``unpicklable``) for items that
        hold the GIL.
    """
    weighed: list[tuple[Mode, float, str]] = [("serial", count * item_seconds, "a loop")]
    if count <= 1:
        return weighed
    process = functools.partial(
        _process_choice,
        count=count,
        item_seconds=item_seconds,
        chunksize=chunksize,
        process_age=process_age,
        server_started=server_started,
        bytes_per_item=bytes_per_item,
    )
    if kind is TaskKind.IO:
        w = workers or io_threads(count, item_seconds, io_cap)
        estimate, turns, waits, label = _io_threads_estimate(count, item_seconds, item_cpu, w)
        weighed.append(("thread", estimate, label))
        if turns > waits and unpicklable is None and workers is None and cpus > 1:
            estimate, _, label = process(w=min(count, cpus), rounds=True)
            weighed.append(("process", estimate, label))
    elif cpus == 1 and workers is None:
        pass  # one CPU: computing items gain nothing from a pool
    elif kind is TaskKind.GIL_FREE:
        weighed.append(("thread", *_gil_free_threads_estimate(count, item_seconds, workers or min(count, cpus))))
    elif unpicklable is None:
        estimate, _, label = process(w=workers or min(count, cpus))
        weighed.append(("process", estimate, label))
    return weighed


def _io_threads_estimate(count: int, item_seconds: float, item_cpu: float, w: int) -> tuple[float, float, float, str]:
    """``count`` waiting items on ``w`` threads: the estimate, its two bounds (turns, waits) and a label.

    Threads overlap the waits, but take turns for the GIL while the items compute: one
    item's wait (all wait side by side), then every item's computing, one at a time (as
    long in whichever order an item waits and computes).
    """
    waits = math.ceil(count / w) * item_seconds
    computing = min(item_cpu, item_seconds)
    turns = item_seconds - computing + count * computing
    label = f"{w} threads" if turns <= waits else f"{w} threads taking turns for the GIL"
    return max(waits, turns) + w * THREAD_START, turns, waits, label


def _gil_free_threads_estimate(count: int, item_seconds: float, w: int) -> tuple[float, str]:
    """``count`` items computing with the GIL released, on ``w`` threads side by side: the estimate and a label."""
    return count * item_seconds / w + w * THREAD_START, f"{w} threads"


def _process_choice(  # noqa: PLR0913 - the process pool's inputs of the cost model, by name
    *,
    count: int,
    item_seconds: float,
    w: int,
    chunksize: int | None,
    process_age: float | None,
    server_started: bool,
    bytes_per_item: int,
    rounds: bool = False,
) -> tuple[float, int, str]:
    """The estimate, chunk size and label of ``count`` items on ``w`` processes.

    ``rounds``: the items take whole rounds of chunks, as waiting items, whose time does
    not spread over workers, do.
    """
    chunk = chunksize or _chunks(count, w, item_seconds, PROCESS_CHUNK_SECONDS)
    full_start = PROCESS_RESTART if server_started else PROCESS_COLD_START
    start = full_start if process_age is None else max(0.0, full_start - process_age)
    # Round trips: counted with the unrounded chunk size, so that longer items never
    # make the estimate jump up when the chunk size steps down.
    per_chunk = min(max(1.0, PROCESS_CHUNK_SECONDS / item_seconds) if item_seconds > 0 else count, chunk)
    work = math.ceil(count / (w * chunk)) * chunk * item_seconds if rounds else count * item_seconds / w
    estimate = (
        start + work + count / per_chunk * PROCESS_ROUND_TRIP / w + count * (bytes_per_item * BYTE_COST + PROCESS_ITEM)
    )
    warmth = "warm" if start == 0 else f"{format_seconds(start)} from warm"
    return estimate, chunk, f"{w} processes ({warmth})"


def forced_choice(  # noqa: PLR0913 - every input, by name
    mode: Mode,
    *,
    kind: TaskKind | None,
    count: int,
    cpus: int,
    io_cap: int,
    workers: int | None,
    chunksize: int | None,
) -> Choice:
    """Size a mode the caller forced, without measuring."""
    if mode == "serial":
        return Choice("serial", 1, chunksize or max(1, count), "mode='serial' was asked for")
    if mode == "thread":
        default = min(count, cpus) if kind in (TaskKind.CPU, TaskKind.GIL_FREE) else min(count, io_cap, FORCED_THREADS)
        w = workers or max(1, default)
        return Choice("thread", w, chunksize or 1, "mode='thread' was asked for")
    w = workers or max(1, min(count, cpus))
    chunk = chunksize or max(1, math.ceil(count / (CHUNKS_PER_WORKER * w)))
    return Choice("process", w, chunk, "mode='process' was asked for")


#: Coroutines in flight at once, by default, in async mode. A waiting coroutine costs a
#: few kilobytes and no thread, so the bound is not there for the loop's sake but for
#: what each one holds open (a socket, a file, a server's attention): generous, yet
#: below the connection limits servers and the operating system's file limit (often
#: 1,024) commonly set. ``workers=`` raises it (10,000 waits at once are fine).
ASYNC_WORKERS = 256


def async_choice(*, count: int | None, workers: int | None, why: str) -> Choice:
    """Size a call of coroutines: ``workers`` (default :data:`ASYNC_WORKERS`) at a time, an item each.

    ``count``: how many items, where known; ``why``: why the call is async, for the reason.
    """
    w = workers or ASYNC_WORKERS
    if count is not None:
        w = max(1, min(w, count))
    if workers:
        limit = f"workers={workers}"
    elif w < ASYNC_WORKERS:
        limit = f"one an item; {ASYNC_WORKERS} at most by default"
    else:
        limit = "the default; workers= changes it"
    return Choice("async", w, 1, f"{why}: its coroutines run on an event loop, at most {w} at a time ({limit})")


#: Through an executor, a task should carry at least this many times the executor's own
#: per-task cost (an empty task's round trip) in work: that cost is then a tenth of the
#: task's time at most. On a Dask cluster a task costs milliseconds, so 1 ms items go
#: in chunks of tens; on a thread pool, microseconds, and nearly every item is a task.
TASK_WORK_PER_OVERHEAD = 10


def executor_choice(  # noqa: PLR0913 - every input of the rule, by name
    name: str,
    *,
    count: int,
    workers: int,
    overhead: float | None,
    item_seconds: float | None,
    chunksize: int | None,
    measured: str,
) -> Choice:
    """Size a call through an executor (``name``, its type) of ``workers`` slots.

    A chunk carries :data:`TASK_WORK_PER_OVERHEAD` times the task ``overhead`` in work,
    at ``item_seconds`` per item, and every slot gets :data:`CHUNKS_PER_WORKER` chunks
    at least, to balance load; without an item time (nothing measured), a task an item.
    ``measured``: what the item time came from, for the reason.
    """
    if chunksize is not None:
        chunk, rule = chunksize, "the chunksize asked for"
    elif overhead is None or not item_seconds:
        chunk, rule = 1, "a task per item"
    else:
        wanted = math.ceil(TASK_WORK_PER_OVERHEAD * overhead / item_seconds)
        balanced = max(1, math.ceil(count / (CHUNKS_PER_WORKER * workers)))
        chunk = max(1, min(wanted, balanced))
        rule = f"≥ {TASK_WORK_PER_OVERHEAD}× its task overhead of {format_seconds(overhead)} in work a task"
        if chunk < wanted:
            rule += f", but {CHUNKS_PER_WORKER} tasks a slot at least"
    each = "" if item_seconds is None else f"{format_seconds(item_seconds)} per item ({measured}); "
    why = f"executor={name} ({workers} at a time): {each}chunks of {chunk} ({rule})"
    return Choice("executor", workers, chunk, why)


R = TypeVar("R")


@final
@attrs.frozen
class Plan(Generic[R]):
    """How a call will run, and why.

    Made by :func:`concurrency_kit.plan`; ``run()`` carries it out. Items the
    measurement already ran are not run again: the first ``run()`` returns their kept
    results in their place. A later ``run()`` runs every item again in this plan's mode.

    Attributes:
        mode: ``"serial"``, ``"thread"``, ``"process"``, ``"executor"`` (an
            executor the caller gave, ``executor=`` or :func:`use_executor`), or
            ``"async"`` (coroutines on an event loop).
        kind: the task's kind; ``None`` only when the caller forced a mode and nothing
            declared one.
        workers: how many threads or processes run the items (1 for serial; in
            async mode, the most coroutines in flight at once).
        chunksize: how many items a worker takes at a time (process mode's last
            chunks are smaller).
        reason: why, with the figures measured.
        measurement: what the probe measured, or ``None`` when nothing was measured.
    """

    mode: Mode
    kind: TaskKind | None
    workers: int
    chunksize: int
    _reason: Reason = attrs.field(alias="reason", eq=render)
    measurement: Measurement | None = None
    _runner: Callable[[Plan[Any]], list[Any]] | None = attrs.field(default=None, repr=False, eq=False, alias="runner")
    _state: Any = attrs.field(default=None, repr=False, eq=False, alias="state")

    @property
    def reason(self) -> str:
        """Why, with the figures measured (written when first read)."""
        if not isinstance(self._reason, str):
            object.__setattr__(self, "_reason", self._reason())  # a frozen class caching its own text
        return self._reason  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"Plan(mode={self.mode!r}, kind={self.kind!r}, workers={self.workers!r}, chunksize={self.chunksize!r}, "
            f"reason={self.reason!r}, measurement={self.measurement!r})"
        )

    def run(self) -> list[R]:
        """Run the plan and return every result, in input order.

        Returns:
            ``[fn(item) for item in items]``, computed as planned.

        Raises:
            Exception: the first exception raised by ``fn``, with its own type and a
                note naming the item (unless the plan collects exceptions).
            TimeoutError: the call's ``timeout`` passed.
            WorkerCrashedError: a worker process died (see :func:`run_parallel`).
            UnpicklableTaskError: ``mode="process"`` was forced and the function or an
                item cannot be pickled (auto falls back to a loop instead).
            RuntimeError: the plan was not made by :func:`concurrency_kit.plan`.
        """
        if self._runner is None:
            raise RuntimeError("this Plan has nothing to run: make plans with concurrency_kit.plan()")
        return self._runner(self)
