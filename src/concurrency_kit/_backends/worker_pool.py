"""The library's own process pool: a pipe per worker, so that one worker can die, or be killed, alone.

A ``ProcessPoolExecutor`` breaks whole when any one of its workers dies: every task in
it fails, and every worker must be started again. This pool loses only the task the
dead worker was running, sends the tasks queued behind it to other workers, and starts
one worker in its place: how a crash, a task timeout (``kill_worker``) and a worker
reaching ``max_tasks_per_worker`` cost one worker, not the pool::

    submit() ─▶ waiting ─▶ manager thread ── a task ──▶ worker 1's pipe ─▶ worker 1 (worker_loop.serve)
                            │  (sends to an idle     ── a task ──▶ worker 2's pipe ─▶ worker 2
                            │   worker first)       ◀── outcomes, "up", ends (sentinels)
                            └─ a dead worker: its running task fails (WorkerDied), the
                               tasks behind it wait again, a fresh worker starts

The manager thread starts the workers, so that ``submit`` never waits for a process to
start, and a worker takes work the moment it is up. A task goes to an idle worker; when
none is idle, a short one (``queue=True``: a chunk of many items, or the pool's recent
tasks took under ``QUEUE_BELOW_SECONDS``) also goes behind a busy worker's running task,
so that the worker does not wait a round trip between them. A long one waits here for
the first worker to be free: with few long items, the next goes to whichever worker
ends first.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any, cast, final

from .worker_loop import RETIRED, UP, serve

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from multiprocessing.connection import Connection
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess

__all__ = ["WorkerDied", "WorkerPool"]

#: A task queued behind a busy worker's running one is sent only while it is this small:
#: a larger one would block the manager thread until the worker reads it.
QUEUED_BYTES = 32 * 1024
#: Tasks that take less than this, as the pool's recent ones did, queue behind busy
#: workers too: a chunk is sized to take about this long (``Sizing.process_chunk_seconds``),
#: and a worker waiting a round trip after each (the manager thread needs the GIL, up to
#: a switch interval behind busy threads) would lose a tenth of its time or more. Longer
#: tasks are few long items: the next goes to whichever worker is free first.
QUEUE_BELOW_SECONDS = 0.025
#: How much each finished task moves the pool's typical task time.
TYPICAL_WEIGHT = 0.2
#: How long ``shutdown(wait=True)`` and a kill wait for a worker process to end.
JOIN_SECONDS = 5.0


class WorkerDied(BrokenProcessPool):
    """The worker running a task died (or was killed): the task's outcome is lost, the pool goes on.

    Attributes:
        pid: the worker's process id.
    """

    def __init__(self, message: str, pid: int) -> None:
        super().__init__(message)
        self.pid = pid


@final
class _Task:
    __slots__ = ("began", "future", "payload", "queue", "started")

    def __init__(self, future: Future[Any], payload: bytes, *, queue: bool) -> None:
        self.future, self.payload, self.queue = future, payload, queue
        self.started = False  # its future says it runs (it was first in a worker's line once)
        self.began = 0.0  # when it became first in its worker's line

    def start(self) -> bool:
        """Its future says it runs (once): whether it still should (not cancelled)."""
        self.began = time.monotonic()
        if not self.started:
            self.started = True
            return self.future.set_running_or_notify_cancel()
        return not self.future.cancelled()


@final
class _Worker:
    """A worker process, its end of the pipe, and the tasks sent to it (the first runs)."""

    __slots__ = ("conn", "killed", "pid", "process", "retired", "sent", "up")

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process, self.conn = process, conn
        self.pid: int = process.pid or 0  # started
        self.sent: deque[_Task] = deque()
        self.up = False  # it said so: its initializer ran
        self.killed = False  # on purpose (kill_worker, kill): its task fails as killed
        self.retired = False  # it said so: it ends having run none of the tasks left in ``sent``


@final
class WorkerPool:
    """A pool of ``max_workers`` worker processes of ``mp_context``, each running ``initializer(*initargs)`` first.

    ``on_up(pid)`` is called (in the pool's thread) as each worker, a replacement too, is up.

    The subset of ``concurrent.futures.ProcessPoolExecutor`` the library uses
    (``submit``, ``shutdown``), plus ``kill_worker``, ``kill`` and what the stop board
    needs (``pids``). A task's function and arguments must pickle.
    """

    def __init__(
        self,
        max_workers: int,
        mp_context: BaseContext,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        on_up: Callable[[int], object] | None = None,
    ) -> None:
        self.max_workers = max_workers
        self._context, self._initializer, self._initargs = mp_context, initializer, initargs
        self._on_up = on_up
        #: Set once a first worker is up, or the pool stopped (``Warming``: units sent then start at once).
        self.up = threading.Event()
        self._lock = threading.Lock()
        self._waiting: deque[_Task] = deque()
        self._workers: list[_Worker] = []
        self._closing = False  # shutdown(): no new tasks; the workers end once theirs are done
        self._typical: float | None = None  # the recent tasks' seconds, smoothed
        self.broken = False  # a worker could not be started: the pool closed
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._manager = threading.Thread(target=self._manage, name="concurrency_kit-process-pool", daemon=True)
        self._manager.start()

    # The callers' side.

    def submit(self, fn: Callable[..., Any], /, *args: Any, queue: bool = True) -> Future[Any]:
        """Run ``fn(*args)`` in a worker; ``queue``: it may wait behind a busy worker's task (see the module).

        Raises:
            BrokenProcessPool: a worker could not be started (the pool is closed).
            RuntimeError: the pool was shut down (as an executor's ``submit`` raises).
        """
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        future: Future[Any] = Future()
        with self._lock:
            if self.broken:
                raise BrokenProcessPool("a worker process of the pool could not be started")
            if self._closing:
                raise RuntimeError("cannot submit a task to a process pool that was shut down")
            self._waiting.append(_Task(future, payload, queue=queue))
        self._wake()
        return future

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (of those started)."""
        with self._lock:
            return [worker.pid for worker in self._workers]

    def is_alive(self) -> bool:
        """Whether its first worker is still starting (``Warming``)."""
        return not self.up.is_set() and self._manager.is_alive()

    def kill_worker(self, pid: int) -> None:
        """Kill the worker ``pid`` at once: its running task fails (``WorkerDied``), a fresh worker takes its place."""
        with self._lock:
            found = [worker for worker in self._workers if worker.pid == pid]
            for worker in found:
                worker.killed = True
        for worker in found:
            with contextlib.suppress(Exception):  # gone already
                worker.process.kill()

    def kill_running(self, futures: Collection[Future[Any]]) -> None:
        """Kill the workers running one of ``futures``' tasks now (not those that only hold one queued)."""
        with self._lock:
            pids = [worker.pid for worker in self._workers if worker.sent and worker.sent[0].future in futures]
        for pid in pids:
            self.kill_worker(pid)

    def kill(self) -> None:
        """Kill every worker at once; tasks not finished fail (``WorkerDied``), and the pool takes no more."""
        with self._lock:
            self._closing = True
            waiting, self._waiting = list(self._waiting), deque()
            workers = list(self._workers)
            for worker in workers:
                worker.killed = True
        for task in waiting:
            task.future.cancel()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.process.kill()
        self._wake()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.process.join(JOIN_SECONDS)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:  # noqa: FBT001, FBT002 - Executor's
        """Take no more tasks; the workers end once the tasks sent to them are done.

        Args:
            wait: wait for that, and for the workers to exit.
            cancel_futures: cancel the tasks no worker has yet.
        """
        with self._lock:
            self._closing = True
            waiting = list(self._waiting) if cancel_futures else []
            if cancel_futures:
                self._waiting.clear()
        for task in waiting:
            task.future.cancel()
        self._wake()
        if wait and self._manager is not threading.current_thread():
            self._manager.join()
            with self._lock:
                workers = list(self._workers)
            for worker in workers:
                worker.process.join(JOIN_SECONDS)

    # The manager thread.

    def _manage(self) -> None:
        """Start the workers, hand tasks out, take outcomes back, replace the dead, until shut down and done."""
        try:
            while True:
                self._start_workers()
                self._dispatch()
                if self._finished():
                    break
                self._serve_one_round()
        finally:
            self._close()

    def _start_workers(self) -> None:
        """Start workers until the pool has ``max_workers`` (not once closing)."""
        while True:
            with self._lock:
                if self._closing or len(self._workers) >= self.max_workers:
                    return
            self._start_one()

    def _start_one(self) -> None:
        """Start one worker (a failure to start closes the pool: ``_fail_start``)."""
        parent_end, child_end = self._context.Pipe()
        make = cast("Callable[..., BaseProcess]", self._context.Process)  # type: ignore[attr-defined]
        process = make(target=serve, args=(child_end, self._initializer, self._initargs), daemon=True)
        try:
            process.start()
        except Exception:  # noqa: BLE001 - the tasks' failure, and the pool's end
            parent_end.close()
            child_end.close()
            self._fail_start()
            return
        child_end.close()
        with self._lock:
            self._workers.append(_Worker(process, parent_end))

    def _fail_start(self) -> None:
        """A worker could not start: the pool is closed, and the tasks waiting fail."""
        with self._lock:
            self._closing = self.broken = True
            waiting, self._waiting = list(self._waiting), deque()
        for task in waiting:
            _settle(task.future, error=BrokenProcessPool("a worker process of the pool could not be started"))

    def _dispatch(self) -> None:
        """Hand waiting tasks to idle workers first, then (small tasks that may queue) behind busy ones.

        A task is running (its future says so) from when it is the first its worker has.
        """
        while True:
            with self._lock:
                task, worker = self._next_pair()
                if task is None or worker is None:
                    return
                self._waiting.popleft()
                if task.future.cancelled() or (not worker.sent and not task.start()):
                    continue  # cancelled while it waited
                worker.sent.append(task)
            with contextlib.suppress(OSError):  # the worker died: its sentinel says so
                worker.conn.send_bytes(task.payload)

    def _next_pair(self) -> tuple[_Task | None, _Worker | None]:
        """The next waiting task and the worker to take it (``None``: none now). Called under the lock."""
        if not self._waiting:
            return None, None
        task = self._waiting[0]
        ready = [worker for worker in self._workers if worker.up and not worker.killed]
        idle = next((worker for worker in ready if not worker.sent), None)
        if idle is not None:
            return task, idle
        short = self._typical is not None and self._typical < QUEUE_BELOW_SECONDS
        if (task.queue or short) and len(task.payload) <= QUEUED_BYTES:
            behind = next((worker for worker in ready if len(worker.sent) == 1), None)
            return task, behind
        return task, None

    def _finished(self) -> bool:
        """Whether the pool is closing with nothing left to run: every worker is told to end.

        Tasks left waiting with no worker to run them (all killed, or dead while
        closing) fail.
        """
        with self._lock:
            if not self._closing or any(worker.sent for worker in self._workers):
                return False
            if self._waiting and self._workers:
                return False
            workers, waiting, self._waiting = list(self._workers), list(self._waiting), deque()
        for task in waiting:
            _settle(task.future, error=BrokenProcessPool("the process pool stopped before the task ran"))
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(b"")
        return True

    def _serve_one_round(self) -> None:
        """Wait for an outcome, a worker's end, or a wake-up; deal with what came."""
        with self._lock:
            workers = list(self._workers)
        handles: dict[Any, tuple[str, _Worker | None]] = {self._wake_read: ("wake", None)}
        for worker in workers:
            handles[worker.conn] = ("conn", worker)
            handles[worker.process.sentinel] = ("end", worker)
        for handle in wait(list(handles)):
            what, which = handles[handle]
            if which is None:
                os.read(self._wake_read, 4096)  # readable: the wake-ups so far
            elif what == "conn":
                self._receive(which)
            else:
                self._ended(which)

    def _receive(self, worker: _Worker) -> None:
        """Read what ``worker`` sent (nothing once it died: its sentinel says so)."""
        with contextlib.suppress(EOFError, OSError):
            self._handle(worker, worker.conn.recv_bytes())

    def _handle(self, worker: _Worker, message: bytes) -> None:
        """What ``worker`` said: that it is up, its running task's outcome, or that it retires."""
        if message in {UP, RETIRED}:
            worker.up, worker.retired = message == UP, message == RETIRED
            if worker.up:
                self.up.set()
                if self._on_up is not None:
                    self._on_up(worker.pid)
            return
        with self._lock:
            task = worker.sent.popleft() if worker.sent else None
            if worker.sent:  # the next one starts now
                worker.sent[0].start()
        if task is None:
            return
        took = time.monotonic() - task.began
        self._typical = took if self._typical is None else self._typical + TYPICAL_WEIGHT * (took - self._typical)
        try:
            ok, value = pickle.loads(message)
        except Exception as exc:  # noqa: BLE001 - the task's failure
            _settle(task.future, error=exc)
            return
        if ok:
            _settle(task.future, result=value)
        else:
            _settle(task.future, error=value)

    def _ended(self, worker: _Worker) -> None:
        """``worker`` ended: its running task fails, those queued behind it wait again, a fresh one starts.

        A worker that retired ran none of the tasks it still had: they all wait again.
        """
        with contextlib.suppress(EOFError, OSError):  # the end of what it sent before it ended
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv_bytes())
        worker.process.join(JOIN_SECONDS)
        lost = None if worker.retired or not worker.sent else worker.sent.popleft()
        with self._lock:
            self._workers.remove(worker)
            self._waiting.extendleft(reversed(worker.sent))
            worker.sent.clear()
        worker.conn.close()
        if lost is not None:
            how = "was killed" if worker.killed else f"died (exit code {worker.process.exitcode})"
            _settle(lost.future, error=WorkerDied(f"the worker process running the task {how}", worker.pid))

    def _close(self) -> None:
        """The manager's end: what still waits fails, the workers told to end are reaped, the wake-up pipe closes."""
        self.up.set()
        with self._lock:
            self._closing = True
            waiting, self._waiting = list(self._waiting), deque()
            workers = list(self._workers)
        for worker in workers:  # they end as they read the word to (a child of ours, with fork or spawn, is reaped)
            worker.process.join(JOIN_SECONDS)
        for task in waiting:
            _settle(task.future, error=BrokenProcessPool("the process pool stopped before the task ran"))
        for end in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(end)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway), or closed (the manager ended)
            os.write(self._wake_write, b"\0")


def _settle(future: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Set ``future``'s outcome, unless it has one (cancelled)."""
    with contextlib.suppress(Exception):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
