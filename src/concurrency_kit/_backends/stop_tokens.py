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

The board also holds a clock for each worker process (``Board.overdue``): a call with a
task timeout gives each worker of its pool one, writing the worker's pid there as it
hands over a chunk (``Board.give_clocks``), and the worker writes there which item it
runs and since when, so that the call can find an item running too long and kill its
worker. No lock is shared: only the parent writes pids, only the worker the rest.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from multiprocessing import heap
from typing import Any, final

from .worker import CLOCK_FIELDS, STOP_SLOT_BYTES, stop_views

__all__ = ["BOARD_SLOTS", "CLOCKS", "NEVER", "Board", "ProcessToken", "ThreadToken"]

#: A mark that stops nothing: every index may start.
NEVER = 2**63 - 1
#: Streams that can hold a process token at once (17 KiB of shared memory).
BOARD_SLOTS = 1024
#: Worker processes alive at once whose items a task timeout can watch (32 KiB): a
#: worker that finds none given to it runs its items unwatched.
CLOCKS = 1024


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
        #: The workers' clocks, handed to each as it starts, as ``memory`` is.
        self.clocks = heap.BufferWrapper(CLOCKS * CLOCK_FIELDS * 8)
        self._clocks = self.clocks.create_memoryview().cast("q")
        self._given: dict[int, int] = {}  # a worker's pid → its clock's first field
        self._calls = 0

    def give_clocks(self, pids: Iterable[int]) -> None:
        """Give each worker of ``pids`` a clock, if it has none: a free one, or a dead worker's."""
        with self._lock:
            given, clocks = self._given, self._clocks
            for pid in pids:
                if pid in given:
                    continue
                dead = [other for other in given if not _alive(other)]
                if dead:
                    entry = given.pop(dead[0])
                elif len(given) < CLOCKS:
                    entry = len(given) * CLOCK_FIELDS
                else:
                    continue  # every clock is a live worker's: this one runs unwatched
                clocks[entry + 3] = 0
                clocks[entry] = pid
                given[pid] = entry

    def new_clock(self) -> int:
        """A number of its own for a call's items on the workers' clocks (never 0)."""
        with self._lock:
            self._calls += 1
            return self._calls

    def overdue(self, clock: int, seconds: float) -> list[tuple[int, int]]:
        """The items of the call ``clock`` that have run longer than ``seconds``: each one's clock, and its index.

        A field is read again after the others: an item whose start changed meanwhile
        (the worker moved on) is not reported.
        """
        clocks, found = self._clocks, list[tuple[int, int]]()
        limit = time.monotonic_ns() - int(seconds * 1e9)
        for entry in range(0, len(self._given) * CLOCK_FIELDS, CLOCK_FIELDS):  # the clocks given so far
            started = clocks[entry + 3]
            if started and started < limit and clocks[entry + 1] == clock:
                index = clocks[entry + 2]
                if clocks[entry + 3] == started:
                    found.append((entry, index))
        return found

    def running_on(self, pid: int, clock: int) -> int | None:
        """The index of the item of the call ``clock`` that the worker ``pid`` noted it runs (``None``: none)."""
        with self._lock:
            entry = self._given.get(pid)
        if entry is None or self._clocks[entry + 1] != clock:
            return None
        index = self._clocks[entry + 2]
        return None if index < 0 else index

    def pid_of(self, entry: int) -> int:
        """The pid of the worker whose clock is at ``entry``."""
        return self._clocks[entry]

    def stopped(self, entry: int) -> None:
        """The worker of the clock at ``entry`` was killed: it runs no item (its clock goes to another later)."""
        self._clocks[entry + 3] = 0

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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie does, until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's
    return True
