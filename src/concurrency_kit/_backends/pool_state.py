"""The record of the process's shared pools: what exists and what is known of it, under one lock.

One object, ``shared``, holds the thread pool, the process pool and what is known about
them (their sizes, start method, age, which are warm, which were killed, the pre-start
in flight), with what every worker process is handed as it starts: the pipe by which it
learns that this process died, and the board of stop tokens. ``_backends.pools`` and
``_backends.prestart`` read and change it. A child made by ``os.fork()`` forgets it all
(the object is cleared in place, so every module's reference to it stays good).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

from .mp_machinery import detach_forkserver
from .stop_tokens import Board

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor
    from multiprocessing.connection import Connection

    from .prestart import Prestart
    from .worker_pool import WorkerPool

__all__ = ["Kept", "PoolState", "shared"]


class Kept(NamedTuple):
    """A pool kept for one initializer (``pools.prepared_pool``): whether its workers import main, how they start."""

    pool: WorkerPool
    main: bool
    start_method: str


class PoolState:
    """The process's pools and what is known about them; every field under ``lock``."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every pool: nothing made yet (fresh locks too)."""
        self.lock = threading.Lock()
        # Held, before ``lock``, while a pre-start submits (which can take a tenth of a
        # second as the forkserver starts) and while shutdown() bumps the generation:
        # shutdown() waits for a submission, a call asking about the pool does not.
        self.start_lock = threading.Lock()
        self.threads: ThreadPoolExecutor | None = None
        self.thread_size = 0
        self.processes: WorkerPool | None = None
        self.process_size = 0
        self.process_main = False  # whether its workers import the main module
        self.main_needed = False  # whether a task needed it: later pools import it too
        self.start_method = ""
        self.born = 0.0  # time.monotonic() when the process pool was made
        self.prepared: OrderedDict[str, Kept] = OrderedDict()  # by initializer token, the last used last
        self.generation = 0  # bumped by shutdown(): a pre-start from before it makes nothing
        self.forkserver_started = False
        self.killed: weakref.WeakSet[WorkerPool] = weakref.WeakSet()  # pools stopped on purpose
        self.warm: weakref.WeakSet[WorkerPool] = weakref.WeakSet()  # every worker has run a task
        self.warming: Prestart | None = None  # the pre-start in flight
        self.exit_wait_registered = False
        self.parent_watch: tuple[Connection, Connection] | None = None  # read end, write end
        self.board: Board | None = None  # the streams' stop tokens, shared with every worker

    def serves(self, workers: int, *, main: bool) -> bool:
        """Whether the current process pool has ``workers`` workers (importing the main module, with ``main``).

        Called under ``lock``.
        """
        return self.processes is not None and self.process_size >= workers and (self.process_main or not main)

    def prestart_in_flight(self) -> Prestart | None:
        """The thread starting a pool in the background, while it runs (another's only)."""
        warming = self.warming
        if warming is None or warming is threading.current_thread() or not warming.is_alive():
            return None
        return warming

    def stop_board(self) -> Board:
        """The board of stop tokens every worker process reads (made on first use). Called under ``lock``."""
        if self.board is None:
            self.board = Board()
        return self.board

    def watched_end(self) -> Connection:
        """The read end of the pipe by which worker processes learn that this process died.

        This process holds the only write end: the kernel closes it when the process dies,
        however it dies, and every worker watching the read end then ends itself (see
        ``watch_parent``). Both ends are not inherited by programs it executes; a child it
        forks closes its copy of the write end (``_forget_after_fork``). Called under ``lock``.
        """
        if self.parent_watch is None:
            self.parent_watch = multiprocessing.Pipe(duplex=False)
        return self.parent_watch[0]

    def worker_initargs(self) -> tuple[Connection, Any, Any]:
        """What each new worker process is handed: the pipe end it watches, the board's memory and clocks.

        Called under ``lock``.
        """
        board = self.stop_board()
        return self.watched_end(), board.memory, board.clocks


shared = PoolState()


def _forget_after_fork() -> None:
    """In a child made by ``os.fork()``: none of the parent's pools, and no hold on its processes.

    The child inherits the pool objects but none of their threads; its pools start
    afresh when first needed. It must not keep the parent's workers or forkserver
    alive after the parent dies: it closes its copy of the write end they watch, and
    multiprocessing's record of the parent's forkserver (``detach_forkserver``).
    """
    watch = shared.parent_watch
    shared.clear()
    if watch is not None:
        # The read end stays open: a worker started by fork watches it. Elsewhere it
        # closes when the inherited pools are collected.
        watch[1].close()
    detach_forkserver()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
