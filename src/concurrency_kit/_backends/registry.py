"""Ways of running items, one module each, behind two small protocols.

Each backend runs items two ways:

- ``Backend`` (``run_parallel`` over a list): takes the indices its
  ``Feed`` hands out, runs ``fn`` on those items, and
  writes results (or the first failure) into the feed's outcomes;
- ``Runner`` (the stream engine, ``_run/engine.py``): runs the units (chunks,
  ``Unit``) the engine hands it, and reads what became of each.

An executor the caller gave (``executor=``) has a runner only: every call through it
streams. The serial mode's stream needs no runner: the engine's loop runs it in the consumer's
thread. A backend knows nothing about how the mode was chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from typing_extensions import Protocol

from .executor import ExecutorRunner, executor_name, executor_workers, task_overhead
from .outcomes import Feed
from .process import TAIL_SHARE, ProcessBackend, ProcessRunner, Sent
from .serial import SerialBackend
from .thread import ThreadBackend, ThreadRunner
from .unit import Lost, Outcome, Read, Runner, Unit

__all__ = [
    "BACKENDS",
    "PROCESS_BACKEND",
    "TAIL_SHARE",
    "Backend",
    "ExecutorRunner",
    "Lost",
    "Outcome",
    "ProcessRunner",
    "Read",
    "Runner",
    "Sent",
    "ThreadRunner",
    "Unit",
    "executor_name",
    "executor_workers",
    "task_overhead",
]


class Backend(Protocol):
    """Runs the items a feed hands out."""

    def run(  # noqa: PLR0913 - every input of a backend, by name
        self,
        fn: Callable[[Any], Any],
        items: Sequence[Any],
        feed: Feed,
        *,
        workers: int,
        chunksize: int,
        deadline: float | None = None,
    ) -> None:
        """Run ``fn`` on ``items[i]`` for every index ``i`` the feed hands out.

        Returns when every index is done, or soon after a failure that stops the call.

        Raises:
            TimeoutError: ``deadline`` (a ``time.monotonic()`` value) passed; the
                caller words the message.
        """
        ...


#: The process backend, for what only it does (``ProcessBackend.run_helping``).
PROCESS_BACKEND = ProcessBackend()

BACKENDS: dict[str, Backend] = {
    "serial": SerialBackend(),
    "thread": ThreadBackend(),
    "process": PROCESS_BACKEND,
}
