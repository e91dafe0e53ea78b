"""The cost model's choice: every option it weighs for the items left, the plain loop first, and the one it picks.

    weigh(...)          → Weighing: the candidates, each with its mode, estimate, workers,
                          chunk size and why it lost; one is chosen
      ├─ the loop         n·t
      └─ the pool that suits the kind:
           io             threads, one per item (capped): ⌈n / w⌉·t + thread start-up, or,
                          while the items compute, their turns for the GIL; and processes,
                          a CPU each, when those turns outweigh the waits
           gil_free       threads, one per usable CPU: n·t / w + thread start-up
           cpu            processes, one per usable CPU: n·t / w + chunk round trips +
                          pickled bytes + pool start-up when cold
    choose(...)         the chosen candidate, as a Choice with its reason
    alternatives(...)   every candidate, for ``python -m concurrency_kit explain``

A pool is chosen only when it beats the loop by ``Choosing.min_gain``. The figures
(a thread's start, a chunk's round trip, a pool's start …) are the machine's, from the
``_core.costmodel.CostModel`` passed in; the chunk sizes follow the sizing rules (``_decide.sizing``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, NotRequired, TypedDict, final

import attrs
from typing_extensions import Unpack

from .._core.costmodel import CostModel
from .._core.kinds import TaskKind
from .plan import Choice, Mode, Reason, format_seconds, render
from .sizing import SIZING, chunks, io_threads

__all__ = ["CHOOSING", "Candidate", "Choosing", "Inputs", "Weighing", "alternatives", "choose", "weigh"]


@final
@attrs.frozen
class Choosing:
    """The chooser's policy numbers."""

    #: A pool must beat the loop by this fraction of the loop's time to be chosen (and,
    #: for I/O items that compute, processes the threads): a smaller gain is within the
    #: swing of measured item times from call to call, and the loop, which starts
    #: nothing and pickles nothing, wins such a draw.
    min_gain: float = 0.10


#: The chooser's policy in force.
CHOOSING = Choosing()


class Candidate(NamedTuple):
    """One option the cost model weighed: a mode, sized, with its estimated time.

    A tuple, not an attrs class: the cost model makes two or three for every call it
    weighs, tiny ones included, where a frozen class's construction costs a microsecond more each.

    Attributes:
        mode: ``"serial"`` (the plain loop), ``"thread"`` or ``"process"``.
        estimate: the estimated seconds for the items left.
        workers: threads or processes (1 for the loop).
        chunksize: items a worker takes at a time.
        label: the option, as the reasons name it (``"a loop"``, ``"16 threads"``).
        why_lost: why another option was chosen (written when first read), or ``None``
            for the chosen one; ``lost`` is its text.
    """

    mode: Mode
    estimate: float
    workers: int
    chunksize: int
    label: str
    why_lost: Reason | None = None

    @property
    def lost(self) -> str | None:
        """Why another option was chosen, or ``None`` for the chosen one."""
        return None if self.why_lost is None else render(self.why_lost)

    def losing(self, why: Reason) -> Candidate:
        """This option, lost for ``why``."""
        return Candidate(self.mode, self.estimate, self.workers, self.chunksize, self.label, why)


class Weighing(NamedTuple):
    """Every option the cost model weighed, the loop first, and which it chose (a tuple, as ``Candidate``).

    Attributes:
        candidates: the loop's, then each pool's weighed for the kind.
        chosen: the index of the chosen candidate.
        why: the choice's reason, with the estimates (written when first read).
        by_cost: the loop won on estimated cost alone (not for a structural reason),
            so a longer measurement could change the choice.
    """

    candidates: tuple[Candidate, ...]
    chosen: int
    why: Reason
    by_cost: bool = False

    def choice(self) -> Choice:
        """The chosen candidate, as a choice with its reason."""
        chosen = self.candidates[self.chosen]
        return Choice(chosen.mode, chosen.workers, chosen.chunksize, self.why, self.by_cost)


class Inputs(TypedDict):
    """Every input of the cost model, by name.

    Attributes:
        kind: the task's kind.
        item_seconds: estimated time of one item run alone.
        count: how many items are left to run.
        cpus: usable CPUs.
        io_cap: the most threads an I/O-bound call gets (see ``_decide.sizing.io_threads``).
        unpicklable: why the task cannot go to processes, or ``None``.
        process_age: seconds since a large enough process pool was started, or
            ``None`` when there is none.
        bytes_per_item: pickled size of an item plus its result.
        model: the machine figures.
        server_started: whether a forkserver is already running, so that new
            workers start fast (default ``False``).
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
        spread: how much one item's time varies (a coefficient of variation, as a run
            measured it; default 0): chunks are sized for it (``sizing.chunks``).
        init_seconds: the call's initializer takes this long (0: it has none): each
            worker of a pool runs it once (a process each, on its CPU; threads in
            turn, as Python code that holds the GIL), the loop none (it ran here).
        policy: the chooser's policy numbers (default ``CHOOSING``).
    """

    kind: TaskKind
    item_seconds: float
    count: int
    cpus: int
    io_cap: int
    unpicklable: str | None
    process_age: float | None
    bytes_per_item: int
    model: CostModel
    server_started: NotRequired[bool]
    spread: NotRequired[float]
    workers: NotRequired[int | None]
    chunksize: NotRequired[int | None]
    item_cpu: NotRequired[float]
    processes_last: NotRequired[bool]
    init_seconds: NotRequired[float]
    policy: NotRequired[Choosing]


def weigh(**inputs: Unpack[Inputs]) -> Weighing:
    """Weigh the options for ``count`` items of ``item_seconds`` each (serial time): see ``Inputs``.

    Returns:
        The candidates and the choice. Only the loop where the choice needs no
        estimate: one item or none, one usable CPU for computing items, or processes
        ruled out (``unpicklable``) for items that hold the GIL.
    """
    return _weigh(inputs)


def _weigh(inputs: Inputs) -> Weighing:
    """``weigh``, on its inputs as they came (``choose`` and ``alternatives`` pass them on without a copy)."""
    count, item_seconds = inputs["count"], inputs["item_seconds"]
    serial = count * item_seconds
    if count <= 1:
        return _loop_only(count, serial, f"{count} item(s) left: nothing to run side by side")
    kind, cpus, workers, chunksize = inputs["kind"], inputs["cpus"], inputs.get("workers"), inputs.get("chunksize")
    model, unpicklable, policy = inputs["model"], inputs["unpicklable"], inputs.get("policy", CHOOSING)
    pools: list[Candidate]
    if kind is TaskKind.IO:
        w = workers or io_threads(count, item_seconds, inputs["io_cap"], model.thread_start)
        weighed = cpus if unpicklable is None and workers is None else 1  # processes weighed on more than one
        last = inputs.get("processes_last", False)
        pools = _io_pools(inputs, w, cpus=weighed, last=last, policy=policy)
    elif cpus == 1 and workers is None:
        return _loop_only(count, serial, "one usable CPU: CPU work gains nothing from a pool")
    elif kind is TaskKind.GIL_FREE:
        w = workers or min(count, cpus)
        chunk = chunksize or chunks(
            count, w, item_seconds, SIZING.thread_chunk_seconds, spread=inputs.get("spread", 0.0)
        )
        pools = [Candidate("thread", count * item_seconds / w + w * model.thread_start, w, chunk, f"{w} threads")]
    elif unpicklable is not None:
        why = f"processes are not an option ({unpicklable}) and threads cannot share the GIL"
        return _loop_only(count, serial, why)
    else:
        pools = [_processes(inputs, workers or min(count, cpus))]
    init = inputs.get("init_seconds", 0.0)
    if init:
        pools = [_initialized(pool, init, cpus) for pool in pools]
    return _against_the_loop(count, serial, pools, policy)


def _initialized(pool: Candidate, init: float, cpus: int) -> Candidate:
    """``pool``, with its workers' initializer runs: a CPU's worth of processes at a time, threads in turn."""
    rounds = math.ceil(pool.workers / max(1, cpus)) if pool.mode == "process" else pool.workers
    label = f"{pool.label} (each runs the initializer, {format_seconds(init)})"
    return Candidate(pool.mode, pool.estimate + rounds * init, pool.workers, pool.chunksize, label, pool.why_lost)


def choose(**inputs: Unpack[Inputs]) -> Choice:
    """The cost model's choice for these inputs (``weigh``'s): the chosen candidate, with its reason.

    The reason quotes the estimates: ``"40 item(s) left: ≈ 88.0 ms in a loop vs ≈ 23.4 ms
    on 2 processes (warm)"``.
    """
    return _weigh(inputs).choice()


def alternatives(**inputs: Unpack[Inputs]) -> tuple[Candidate, ...]:
    """Every option ``choose`` weighs for these inputs (``weigh``'s): the loop's, then each pool's.

    For ``python -m concurrency_kit explain``, which shows a user the options auto had.
    """
    return _weigh(inputs).candidates


def _loop_only(count: int, serial: float, why: str) -> Weighing:
    """The loop, chosen without weighing a pool, for ``why``."""
    return Weighing((Candidate("serial", serial, 1, max(1, count), "a loop"),), 0, why)


def _against_the_loop(count: int, serial: float, pools: list[Candidate], policy: Choosing) -> Weighing:
    """The pool that won among ``pools`` (the first, unless the second beat it) against the loop."""
    at = 0 if pools[0].why_lost is None else 1
    best, gain = pools[at], policy.min_gain

    def figures() -> str:
        label = best.label
        if at:  # it beat the first pool, which the reason names too
            label += f", against ≈ {format_seconds(pools[0].estimate)} on {pools[0].label}"
        estimates = f"≈ {format_seconds(serial)} in a loop vs ≈ {format_seconds(best.estimate)} on {label}"
        return f"{count} item(s) left: {estimates}"

    if best.estimate < serial * (1 - gain):
        lost = Candidate(
            "serial", serial, 1, max(1, count), "a loop", lambda: f"a pool beats it by more than {gain:.0%}"
        )
        return Weighing((lost, *pools), 1 + at, figures)
    pools[at] = best.losing(lambda: f"does not beat the loop by more than {gain:.0%}: too little work to pay for it")
    loop = Candidate("serial", serial, 1, max(1, count), "a loop")
    return Weighing((loop, *pools), 0, lambda: f"{figures()}; too little work to pay for a pool", by_cost=True)


def _io_pools(inputs: Inputs, w: int, *, cpus: int, last: bool, policy: Choosing) -> list[Candidate]:
    """Threads for waiting items, ``w`` of them; and processes, one a CPU, where the computing bounds the threads.

    Threads overlap the waits, but take turns for the GIL while the items compute: one
    item's wait (all wait side by side), then every item's computing, one at a time (as
    long in whichever order an item waits and computes). Processes are weighed where
    those turns outweigh the waits, on ``cpus`` CPUs (1: not weighed), against the
    threads' work alone (their start is paid once, in a warm pool), so that processes
    must win clearly, or, once there (``last``: the last call ran the items in
    processes), threads must. On two CPUs processes run at most two items at a time:
    they win only for two items, or items that compute 40 % of their time or more.
    """
    count, item_seconds = inputs["count"], inputs["item_seconds"]
    waits = math.ceil(count / w) * item_seconds
    computing = min(inputs.get("item_cpu", 0.0), item_seconds)
    turns = item_seconds - computing + count * computing
    label = f"{w} threads" if turns <= waits else f"{w} threads taking turns for the GIL"
    estimate = max(waits, turns) + w * inputs["model"].thread_start
    threads = Candidate("thread", estimate, w, inputs.get("chunksize") or 1, label)
    if turns <= waits or cpus == 1:
        return [threads]
    processes = _processes(inputs, min(count, cpus), rounds=True)
    gain = policy.min_gain
    bar = turns / (1 - gain) if last else turns * (1 - gain)
    if processes.estimate < bar:
        return [threads.losing(lambda: _io_loss(turns, gain, last=last, threads=True)), processes]
    return [threads, processes.losing(lambda: _io_loss(turns, gain, last=last, threads=False))]


def _io_loss(turns: float, gain: float, *, last: bool, threads: bool) -> str:
    """Why the threads (``threads``) or the processes lost, against the threads' work alone (``turns``).

    ``last``: the last call ran the items in processes, which then win unless the threads do clearly.
    """
    alone = format_seconds(turns)
    if threads:
        if last:
            return f"its work alone (≈ {alone}) does not beat the processes the last call ran by more than {gain:.0%}"
        return f"processes beat its work alone (≈ {alone}) by more than {gain:.0%}"
    if last:
        return f"the threads' work alone (≈ {alone}) beats it by {gain:.0%} or more"
    return f"does not beat the threads' work alone (≈ {alone}) by more than {gain:.0%}"


def _processes(inputs: Inputs, w: int, *, rounds: bool = False) -> Candidate:
    """The items on ``w`` processes: their estimate, chunk size and label.

    ``rounds``: the items take whole rounds of chunks, as waiting items, whose time
    does not spread over workers, do.
    """
    count, item_seconds, model, age = inputs["count"], inputs["item_seconds"], inputs["model"], inputs["process_age"]
    target = SIZING.process_chunk_seconds
    spread = inputs.get("spread", 0.0)
    chunk = inputs.get("chunksize") or chunks(
        count, w, item_seconds, target, spread=spread, round_trip=model.process_round_trip
    )
    full_start = model.pool_start(server_started=inputs.get("server_started", False))
    start = full_start if age is None else max(0.0, full_start - age)
    # Round trips: counted with the unrounded chunk size, so that longer items never
    # make the estimate jump up when the chunk size steps down.
    per_chunk = min(max(1.0, target / item_seconds) if item_seconds > 0 else count, chunk)
    work = math.ceil(count / (w * chunk)) * chunk * item_seconds if rounds else count * item_seconds / w
    estimate = (
        start
        + work
        + count / per_chunk * model.process_round_trip / w
        + count * (inputs["bytes_per_item"] * model.byte_cost + model.process_item)
    )
    warmth = "warm" if start == 0 else f"{format_seconds(start)} from warm"
    return Candidate("process", estimate, w, chunk, f"{w} processes ({warmth})")
