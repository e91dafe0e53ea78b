"""A loop in the calling thread, as a runner: each unit runs as the engine hands it over."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, final

from .unit import Done, Read, Unit, Warming, run_chunk

__all__ = ["LoopRunner"]


@final
class LoopRunner:
    """Runs each unit in the calling thread the moment it is submitted; its future is done on return.

    For a loop whose items the probe's threads ran in part: the rest run here, in
    order, while those threads finish theirs. The engine reads a unit done on
    submission at once, so a failure stops the taking before the next unit runs.
    """

    capacity = 1

    def __init__(self, fn: Callable[[Any], Any], *, collect: bool) -> None:
        self._fn, self._collect = fn, collect

    def warming(self) -> Warming | None:
        """Nothing to start."""
        return None

    def submit(self, unit: Unit) -> Future[Done]:
        """Run ``unit`` now."""
        done: Future[Done] = Future()
        done.set_result(self.run_here(unit))
        return done

    def run_here(self, unit: Unit) -> Done:
        """Run ``unit`` in the calling thread."""
        return run_chunk(self._fn, unit.items, self._collect, unit.start)

    def help(self) -> bool:
        """Nothing waits: every unit ran when it was submitted."""
        return False

    def read(self, unit: Unit, future: Future[Done]) -> Read:  # noqa: ARG002 - the protocol
        """Its results."""
        return future.result()

    def halt(self, after: int) -> None:
        """Nothing runs after a failure: the engine takes no more units."""

    def expire(self, seconds: float) -> list[tuple[Future[Any], Unit, int]]:  # noqa: ARG002 - the protocol
        """Nothing runs in the background: a loop's items finish as they are handed over (no ``task_timeout``)."""
        return []

    def stop(self, running: dict[Future[Any], Unit], *, kill: bool) -> None:
        """Nothing runs: every unit finished when it was submitted."""
