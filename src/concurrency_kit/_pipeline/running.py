"""One run of a pipeline: the pass, then the source's reader, a driver thread per stage, the consumer; how they stop.

    results()  the consumer's generator:
      first_pass()   the first items through the stages in this thread (fusing.py): all cheap →
                     the whole pipeline here, a chain of iterators (inline.py), and nothing below
      launch()       the stages grouped (fused ones as one), an inbox each, the pass's leftovers in them:
        reader thread ── budget.acquire() ─▶ Inbox ─▶ stage drivers (stages.py) ─▶ … ─▶ Inbox ─▶ the consumer
          (waits while max_in_flight items          each waits while the next           yields, frees
           are taken and not yet yielded)           inbox is full                       their places

The bound: ``budget`` counts the items in the pipeline (taken from the source, or made
from one by a ``flat_map``, and not yet yielded or dropped); the reader takes a new
item only while fewer than ``max_in_flight`` are. So the source is never read far ahead
of a slow consumer, however many stages there are.

Stopping, for every reason (the end, a failure in any stage or in the source, the
consumer's ``close``, ``break``, Ctrl-C, the timeout): ``halt`` sets the stop future
each stage's stream watches (its engine stops, its worker processes are killed), wakes
every thread waiting on an inbox or on the budget, and the reader closes the source in
its own thread (its ``finally`` runs). The consumer then waits for every thread to end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any, final

import attrs

from .._backends.outcomes import Stopped
from .._backends.stage_calls import Failed
from .._core.cpu import planning_cpus
from .._core.options import CallOptions
from .._core.share import Share
from .._run.inbox import Inbox
from .budget import Balancer
from .fusing import Pass, first_pass, grouped, to_boundaries
from .inline import inline
from .progress import StageProgress, Told, told_by
from .report import PipelineReport, StageReport, bottleneck_of
from .source import Budget, Reader, close_source
from .stages import Driver, Stage, StageState, stage_sizes, stage_windows

__all__ = ["PipelineRun", "RunShape"]

#: How long the consumer waits for a result before it looks at the clock and the progress again.
_POLL_SECONDS = 0.1
#: How long stopping waits for each of the run's threads (a source that blocks in
#: ``next`` cannot be interrupted: its thread is left to end by itself, as a daemon).
_JOIN_SECONDS = 5.0


@final
@attrs.frozen
class RunShape:
    """How a run goes: the options of ``Pipeline.stream`` (checked)."""

    ordered: bool
    collect: bool
    timeout: float | None
    bound: int
    progress: bool | StageProgress | None


class PipelineRun:
    """A pipeline's one run: ``results()`` is its consumer's generator (nothing starts before it is read).

    Args:
        source: the pipeline's source.
        stages: its stages, as built.
        shape: the run's options.
        options: a plain stage's options in this run, given its window.
    """

    def __init__(
        self,
        source: Iterable[Any] | AsyncIterable[Any],
        stages: Sequence[Stage],
        shape: RunShape,
        options: Callable[[Stage, int], CallOptions | None],
    ) -> None:
        self.source, self.stages, self.shape, self.options = source, stages, shape, options
        self.states = [StageState() for _ in stages]  # each stage's
        self.inboxes: list[Inbox] = []  # each running stage's input, then the consumer's
        self.place: list[int] = list(range(len(stages)))  # a stage's running stage (its group)
        self.fused: list[tuple[str, ...]] = []
        self.budget = Budget(shape.bound)
        self.stop: Future[None] = Future()
        self.failure: BaseException | None = None
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.started: float | None = None
        self.ended: float | None = None
        self.yielded = 0
        self.reader: Reader | None = None
        self.balancer = Balancer(planning_cpus())
        self.running_states: list[StageState] = []  # each running stage's (a fused one's: its own)
        self.firsts: list[int] = []  # each running stage's first stage

    # The run's side, for the stage drivers (``stages.Run``).

    def budget_add(self, count: int) -> None:
        self.budget.add(count)

    def fail(self, error: BaseException) -> None:
        """The run's first failure: kept for the consumer, and everything stops."""
        with self.lock:
            if self.failure is None:
                self.failure = error
        self.halt()

    def stopping(self) -> bool:
        return self.stop.done()

    def computes(self, share: Share, workers: int) -> None:
        place = next(number for number, state in enumerate(self.running_states) if state.share is share)
        self.balancer.add(place, share, workers)

    def halt(self) -> None:
        """Stop every stage, wake every wait (see the module's docstring)."""
        try:
            self.stop.set_result(None)
        except InvalidStateError:
            return
        self.budget.stop()
        for inbox in self.inboxes:
            inbox.close()

    # The consumer.

    def results(self) -> Iterator[Any]:
        """The consumer's iterator: the pass runs now; the stages' threads start when it is first read.

        On leaving it (the end, a failure, ``close``), everything stops.

        Raises:
            Exception: a stage's failure on the pass's items, or the source's (and, while
                iterating: the first failure of a stage or of the source, noted with where it
                came from; ``TimeoutError`` once ``timeout`` passed).
        """
        self.started = time.monotonic()
        shape = self.shape
        deadline = None if shape.timeout is None else self.started + shape.timeout
        names, totals = [stage.name for stage in self.stages], stage_sizes(self.source, self.stages)
        told = told_by(names, self.states, totals, progress=shape.progress)
        if isinstance(self.source, AsyncIterable):
            return self.threaded(Pass.empty(len(self.stages)), None, 0, deadline, told)
        iterator = iter(self.source)
        try:
            found, taken = first_pass(self.stages, iterator, limit=shape.bound, collect=shape.collect)
        except BaseException:
            close_source(iterator)
            raise
        if not found.cheap:
            return self.threaded(found, iterator, taken, deadline, told)
        found.count(self.states)
        late = None if deadline is None else lambda: self.check_deadline(deadline)
        return inline(
            self.stages,
            self.states,
            found.depths[-1],
            iterator,
            start=taken,
            collect=shape.collect,
            told=told,
            deadline=late,
        )

    def threaded(
        self,
        found: Pass,
        iterator: Iterator[Any] | None,
        taken: int,
        deadline: float | None,
        told: Told | None,
    ) -> Iterator[Any]:
        """The run in threads (see the module's docstring): the pass's results, then the last inbox's."""
        try:
            done = self.launch(found, iterator, taken)
            for value in done:
                self.budget.add(-1)
                self.yielded += 1
                yield value.error if type(value) is Failed else value
            yield from self.consume(deadline, told)
        finally:
            self.halt()
            self.join()
            if iterator is not None and not self.threads:
                close_source(iterator)  # no reader took it over
            if told is not None:
                told.close()

    def consume(self, deadline: float | None, told: Callable[[], None] | None) -> Iterator[Any]:
        """The last inbox's items, as they come.

        Raises:
            TimeoutError: the deadline passed.
            Stopped: the run was stopped from outside (an event loop's reader went away).
            Exception: the run's failure.
        """
        out = self.inboxes[-1]
        while True:
            wait = _POLL_SECONDS if deadline is None else min(_POLL_SECONDS, deadline - time.monotonic())
            got = out.next_within(max(0.0, wait))
            if told is not None:
                told()
            if self.balancer.due(now := time.monotonic()):
                self.balance(now)
            if got is None:
                if deadline is not None:
                    self.check_deadline(deadline)
                continue
            if not got:
                break
            _, value = got[0]
            self.budget.add(-1)
            self.yielded += 1
            yield value.error if type(value) is Failed else value
        if self.failure is not None:
            raise self.failure
        if self.stop.done():
            raise Stopped

    def balance(self, now: float) -> None:
        """Let the budget look at the running stages' work (``budget.py``)."""
        busy = [self.seconds_of(place, now)[0] for place in range(len(self.running_states))]
        items = [inbox.taken for inbox in self.inboxes[:-1]]
        self.balancer.look(now, busy, items, 0 if self.reader is None else self.reader.index)

    def check_deadline(self, deadline: float) -> None:
        """Raise the run's timeout once ``deadline`` passed.

        Raises:
            TimeoutError: it passed.
        """
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"the pipeline did not finish within its timeout of {self.shape.timeout:g} s "
                f"({self.yielded} results read); its stages were stopped"
            )

    # Starting.

    def launch(self, found: Pass, iterator: Iterator[Any] | None, taken: int) -> list[Any]:
        """The running stages (fused where ``found`` says), their inboxes with the pass's leftovers, their threads.

        Returns:
            The values the pass finished, to be yielded first.
        """
        running = grouped(self.stages, found)
        self.firsts = firsts = self.place_stages(running)
        to_boundaries(self.stages, found, firsts, collect=self.shape.collect)
        found.count(self.states)
        windows, sizes = stage_windows(running, self.shape.bound), stage_sizes(self.source, running)
        self.inboxes = [Inbox(max(2, window // 2), remember=window + 128) for window in windows]
        self.inboxes.append(Inbox(max(2, self.shape.bound // 4)))  # the consumer's
        self.running_states = [
            StageState() if stage.members else self.states[first] for stage, first in zip(running, firsts, strict=True)
        ]
        drivers = [
            Driver(
                self,
                stage,
                self.running_states[number],
                inbox=self.inboxes[number],
                out=self.inboxes[number + 1],
                options=self.shared(self.options(stage, windows[number]), self.running_states[number]),
                size=sizes[number],
                members=self.states[firsts[number] : firsts[number] + len(stage.members)],
            )
            for number, stage in enumerate(running)
        ]
        self.budget.add(sum(len(items) for items in found.depths))
        for depth, items in enumerate(found.depths[:-1]):
            self.inboxes[self.place[depth]].preload(items)  # before any thread: in order, ahead of the rest
        targets: list[tuple[str, Callable[[], None]]] = [(driver.stage.name, driver.run) for driver in drivers]
        source = iterator if iterator is not None else self.source
        assert not isinstance(source, Iterable) or isinstance(source, Iterator)
        self.reader = Reader(source, taken, inbox=self.inboxes[0], budget=self.budget, fail=self.fail)
        targets.append(("source", self.reader.run))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"concurrency_kit pipeline: {name}", daemon=True)
            self.threads.append(thread)
            thread.start()
        return [value for _, value in found.depths[-1]]

    @staticmethod
    def shared(options: CallOptions | None, state: StageState) -> CallOptions | None:
        """``options`` with a share of the budget, which ``state`` keeps (a batch: ``None``, none)."""
        if options is None:
            return None
        state.share = Share()
        return attrs.evolve(options, share=state.share)

    def place_stages(self, running: Sequence[Stage]) -> list[int]:
        """Note which running stage runs each stage, list the fused ones for the report.

        Returns:
            Each running stage's first stage.
        """
        firsts: list[int] = []
        number = 0
        for place, stage in enumerate(running):
            members = stage.members or (stage,)
            firsts.append(number)
            for _ in members:
                self.place[number] = place
                number += 1
            if stage.members:
                self.fused.append(tuple(member.name for member in members))
        return firsts

    def join(self) -> None:
        """Wait for the run's threads to end (a bounded time each)."""
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(_JOIN_SECONDS)
        self.ended = time.monotonic()

    # The report.

    def report(self) -> PipelineReport:
        """Where the time went, so far."""
        now = time.monotonic() if self.ended is None else self.ended
        seconds = 0.0 if self.started is None else now - self.started
        records = [self.record(number, now) for number in range(len(self.stages))]
        return PipelineReport(records, bottleneck_of(records, seconds), list(self.fused), seconds)

    def seconds_of(self, place: int, now: float) -> tuple[float, float, float, float]:
        """Running stage ``place``'s seconds so far: busy, waiting, blocked, and in all."""
        state, inbox, out = self.running_states[place], self.inboxes[place], self.inboxes[place + 1]
        ran = 0.0 if state.started is None else (state.ended or now) - state.started
        waiting, blocked = min(ran, inbox.waited()), min(ran, out.blocked)
        return max(0.0, ran - waiting - blocked), waiting, blocked, ran

    def record(self, number: int, now: float) -> StageReport:
        """Stage ``number``'s record.

        A fused stage has its group's mode, workers, waiting and blocked seconds, and
        the share of the group's busy seconds that its calls took in the workers.
        """
        own, place = self.states[number], self.place[number]
        state = self.running_states[place] if self.running_states else own
        busy = waiting = blocked = ran = 0.0
        if self.inboxes:
            busy, waiting, blocked, ran = self.seconds_of(place, now)
        elif own.started is not None:  # inline: the consumer's thread, never waiting
            busy = ran = (own.ended or now) - own.started
        items_in = self.inboxes[place].taken if self.inboxes and state is own else own.done
        shares = self.balancer.moves(place) if self.inboxes else []
        moves = (state.workers, *shares) if shares else ()
        return StageReport(
            name=self.stages[number].name,
            mode=state.mode,
            workers=moves[-1] if moves else state.workers,
            moves=moves,
            items_in=items_in,
            items_out=own.items_out,
            busy=busy * self.busy_share(number, place) if state is not own else busy,
            waiting=waiting,
            blocked=blocked,
            rate=items_in / ran if ran > 0 else 0.0,
            reason=state.reason,
        )

    def busy_share(self, number: int, place: int) -> float:
        """Fused stage ``number``'s share of its group's busy seconds: its calls' share of the members' seconds."""
        members = [state for at, state in zip(self.place, self.states, strict=True) if at == place]
        total = sum(state.seconds for state in members)
        return self.states[number].seconds / total if total > 0 else 1 / len(members)
