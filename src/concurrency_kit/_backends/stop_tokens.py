"""Stop tokens: how a stream tells the workers running its units which of its items may still start.

A unit handed to a pool cannot always be taken back: CPython's process pool moves up to
``workers + 1`` tasks into its call queue, where ``Future.cancel()`` no longer reaches
them, and a thread of the pool takes the next task the moment it is free, before the
stream has read the failure that should have stopped it. So a worker checks its stream's
token before each item, and an item past the token's mark does not start (its unit comes
back short).

The mark falls to an item's index when that item fails (without ``return_exceptions``):
first in the worker that ran it, before it sends the unit back, then in the stream as it
reads the failure. In input order, the items before a failure still run (they are
yielded before it is raised); none after it starts. It falls to -1 when the stream ends
(closed, timed out, failed): nothing of the stream starts after that.

Threads share a ``ThreadToken``. Worker processes share a ``Board``: memory
made once per process and handed to every worker of its pools as it starts. A stream's
``ProcessToken`` is a slot of it: two 64-bit marks, one written by the stream, one
by its workers (so that neither overwrites a lower mark the other set), and a flag byte,
set once either mark falls. Before each item a worker reads the flag (a byte that is
read as a small int: a few nanoseconds), and the marks only once it is set
(``run_pickled_chunk``). A slot is free again once every
unit the stream sent has finished. A stream that finds every slot taken runs without
one: its queued units then start after an error, as a bare ``ProcessPoolExecutor``'s
would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from multiprocessing import heap
from typing import Any, final

from .worker import STOP_SLOT_BYTES, stop_views

__all__ = ["BOARD_SLOTS", "NEVER", "Board", "ProcessToken", "ThreadToken"]

#: A mark that stops nothing: every index may start.
NEVER = 2**63 - 1
#: Streams that can hold a process token at once (17 KiB of shared memory).
BOARD_SLOTS = 1024


@final
class ThreadToken:
    """The mark shared by a stream and the threads running its units: items after ``last`` do not start."""

    __slots__ = ("_lock", "last")

    def __init__(self) -> None:
        #: The last index that may start.
        self.last = NEVER
        self._lock = threading.Lock()

    def failed(self, index: int) -> None:
        """Item ``index`` failed: no item after it starts."""
        with self._lock:
            self.last = min(self.last, index)

    def stop(self) -> None:
        """The stream ended: no item starts."""
        self.failed(-1)


@final
class Board:
    """Memory shared with every worker process of this process's pools: stop tokens' slots."""

    def __init__(self, slots: int = BOARD_SLOTS) -> None:
        #: Handed to each worker process as it starts (``init_process_worker``): memory
        #: that pickles, as a process starts, to a descriptor of the file behind it.
        self.memory = heap.BufferWrapper(slots * STOP_SLOT_BYTES)
        self._marks, self._flags = stop_views(self.memory.create_memoryview())
        self._free = list(range(slots - 1, -1, -1))
        self._lock = threading.Lock()

    def token(self) -> ProcessToken | None:
        """A slot of its own for a stream, marked to stop nothing; ``None`` when every slot is taken."""
        with self._lock:
            if not self._free:
                return None
            slot = self._free.pop()
        self._marks[2 * slot] = self._marks[2 * slot + 1] = NEVER
        self._flags[slot] = 0
        return ProcessToken(self._marks, self._flags, slot, self._release)

    def _release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)


@final
class ProcessToken:
    """A stream's slot of the board: the mark it writes (``2 × slot``), its workers' (``2 × slot + 1``), its flag."""

    __slots__ = ("_flags", "_marks", "_release", "slot")

    def __init__(self, marks: memoryview, flags: memoryview, slot: int, release: Callable[[int], None]) -> None:
        self._marks, self._flags, self.slot, self._release = marks, flags, slot, release

    def failed(self, index: int) -> None:
        """Item ``index`` failed: no item after it starts (written by the stream's thread only)."""
        cell = 2 * self.slot
        self._marks[cell] = min(self._marks[cell], index)
        self._flags[self.slot] = 1

    def stop(self) -> None:
        """The stream ended: no item starts."""
        self._marks[2 * self.slot] = -1
        self._flags[self.slot] = 1

    def release_when_done(self, futures: Iterable[Future[Any]]) -> None:
        """Free the slot once every one of ``futures`` (the units the stream still had in a pool) is done.

        Until then a unit of the stream may still reach a worker, which must find the slot stopped.
        """
        pending = [future for future in futures if not future.done()]
        if not pending:
            self._release(self.slot)
            return
        left = [len(pending)]
        lock = threading.Lock()

        def one_done(_: Future[Any]) -> None:
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self._release(self.slot)

        for future in pending:
            future.add_done_callback(one_done)
