"""The plan of a call: what was decided (a mode, its sizing) and why.

The cost model that picks it weighs its options in ``_decide.choose``, on the machine figures of
``_core.costmodel``; the sizing rules are ``_decide.sizing``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import attrs

from .._core.kinds import TaskKind
from .._core.options import Mode
from .._run.handover import Handover, Sizing

if TYPE_CHECKING:
    from .probe import Measurement

__all__ = [
    "Choice",
    "MeasuredItems",
    "Mode",
    "Plan",
    "Reason",
    "describe_measurement",
    "format_seconds",
    "render",
]

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
    """A mode with its sizing and the reason for it (``why``, written by ``reason``)."""

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


R = TypeVar("R")


@final
@attrs.frozen
class MeasuredItems:
    """The items a plan's measuring ran, as long as its first ``run()`` has not taken them.

    Attributes:
        count: how many (the first ``count`` items of the input).
        results: their results, kept for the first ``run()`` (with ``return_exceptions``,
            an exception in the place of an item that raised one).
        failure: the index of the item that raised while measuring, and its exception;
            ``None`` if none did.
    """

    count: int
    results: list[Any]
    failure: tuple[int, BaseException] | None


@final
@attrs.frozen
class Plan(Generic[R]):
    """How a call will run, and why.

    Made by [`plan`][concurrency_kit.plan]; ``run()`` carries it out. Items the
    measurement already ran are not run again: the first ``run()`` returns their kept
    results in their place. A later ``run()`` runs every item again in this plan's mode.

    Attributes:
        mode: ``"serial"``, ``"thread"``, ``"process"``, ``"executor"`` (an
            executor the caller gave, ``executor=`` or [`use_executor`][concurrency_kit.use_executor]), or
            ``"async"`` (coroutines on an event loop).
        kind: the task's kind; ``None`` only when the caller forced a mode and nothing
            declared one.
        workers: how many threads or processes run the items (1 for serial; in
            async mode, the most coroutines in flight at once).
        chunksize: how many items a worker takes at a time (process mode's last
            chunks are smaller).
        reason: why, with the figures measured.
        measurement: what the probe measured, or ``None`` when nothing was measured.
        measured: the items the measuring ran and their results (see ``MeasuredItems``).
    """

    mode: Mode
    kind: TaskKind | None
    workers: int
    chunksize: int
    _reason: Reason = attrs.field(alias="reason", eq=render)
    measurement: Measurement | None = None
    #: Runs the plan's call at this sizing (the run layer's, given by the façade).
    _runner: Callable[[Sizing], list[Any]] | None = attrs.field(default=None, repr=False, eq=False, alias="runner")
    #: What the measuring left to the run (read here for ``measured`` only).
    _handover: Handover | None = attrs.field(default=None, repr=False, eq=False, alias="handover")

    @property
    def sizing(self) -> Sizing:
        """The mode, workers and chunk size, as the run takes them."""
        return Sizing(self.mode, self.workers, self.chunksize)

    @property
    def measured(self) -> MeasuredItems:
        """The items the measuring ran and their results, until the first ``run()`` takes them."""
        if self._handover is None:
            return MeasuredItems(0, [], None)
        return MeasuredItems(*self._handover.measured())

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
            WorkerCrashedError: a worker process died (see [`run_parallel`][concurrency_kit.run_parallel]).
            UnpicklableTaskError: ``mode="process"`` was forced and the function or an
                item cannot be pickled (auto falls back to a loop instead).
            RuntimeError: the plan was not made by [`plan`][concurrency_kit.plan].
        """
        if self._runner is None:
            raise RuntimeError("this Plan has nothing to run: make plans with concurrency_kit.plan()")
        return self._runner(self.sizing)
