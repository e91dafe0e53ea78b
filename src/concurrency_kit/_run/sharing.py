"""A runner that keeps busy only its share of its workers: a pipeline stage under the pipeline's budget.

    Engine ── runner_has_room(): capacity ──▶ Throttled ── everything else ──▶ the mode's runner
                                              capacity × share / workers

The engine keeps as many units in flight as the runner's ``capacity`` says; a stage
whose share of the pipeline's workers is smaller than the workers it was planned with
keeps fewer in flight, and its pool's other workers serve the other stages. The share
moves while the stage runs (``_core/share.py``); the next unit handed on follows it.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, final

from .._backends.unit import Done, Read, Runner, Unit, Warming
from .._core.share import Share

__all__ = ["Throttled"]


@final
class Throttled:
    """``runner``, its capacity scaled to ``share`` of its ``workers`` (a ``Runner`` itself)."""

    def __init__(self, runner: Runner, share: Share, workers: int) -> None:
        self.runner, self.share, self.workers = runner, share, max(1, workers)

    @property
    def capacity(self) -> int:
        capacity = self.runner.capacity
        share = self.share.workers
        if share is None or share >= self.workers:
            return capacity
        return max(1, capacity * share // self.workers)

    def warming(self) -> Warming | None:
        return self.runner.warming()

    def submit(self, unit: Unit) -> Future[Any]:
        return self.runner.submit(unit)

    def run_here(self, unit: Unit) -> Done:
        return self.runner.run_here(unit)

    def help(self) -> bool:
        return self.runner.help()

    def read(self, unit: Unit, future: Future[Any]) -> Read:
        return self.runner.read(unit, future)

    def halt(self, after: int) -> None:
        self.runner.halt(after)

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:
        return self.runner.expire(seconds)

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:
        self.runner.stop(running, kill=kill)
