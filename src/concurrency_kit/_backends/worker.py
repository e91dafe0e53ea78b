"""Code that runs inside the library's worker threads and processes.

Kept small and free of heavy imports: a worker process imports it to run chunks.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading
import time

from .._core.errors import UnpicklableTaskError

#: ``typing.TYPE_CHECKING``, without importing typing (a tenth of a worker's start-up).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from typing import Any

__all__ = [
    "AwaitableResult",
    "ExceptionCarrier",
    "RemoteTraceback",
    "in_worker",
    "init_process_worker",
    "init_thread_worker",
    "items_run",
    "load_by_value",
    "ping",
    "retire",
    "retiring",
    "run_pickled_chunk",
    "warm_up_worker",
    "watch_parent",
]


class _ThreadState(threading.local):
    """Per thread: whether it is one of the library's pool threads."""

    #: A class default: a thread that never set it finds it here, without the
    #: AttributeError a missing attribute costs.
    in_worker = False


_local = _ThreadState()
_in_worker_process = False
#: A stop token's slot on the board (``_backends.stop_tokens.Board``): two 64-bit marks and a flag byte.
STOP_SLOT_BYTES = 17
#: The board's marks and flags, in a worker process of the library's pools.
_stop_marks: memoryview | None = None
_stop_flags: memoryview | None = None
#: A flag never set, for a chunk without a stop token.
_NO_FLAG = memoryview(bytes(1))
#: A worker's clock on the board (``_backends.stop_tokens.Board.overdue``): four 64-bit
#: fields, its pid, the call's clock, the item's index and when it started
#: (``time.monotonic_ns()``, 0 while it runs none).
CLOCK_FIELDS = 4
#: The board's clocks (``init_process_worker``), and this worker's, once the parent has given it one.
_clocks: memoryview | None = None
_clock: memoryview | None = None
_clock_waited = False
#: Items this worker process has run (``max_tasks_per_worker``: it retires at the limit).
_items_run = 0
#: Whether this worker process retires once its task is done (it reached ``max_tasks_per_worker``).
_retired = False
#: How long a worker waits for the parent to give it a clock (it does so as it hands over the
#: chunk, so the wait is a thread switch); past it, the chunk's items run unwatched.
CLOCK_WAIT_SECONDS = 2.0

#: Thread-pool variables of numeric libraries, limited to one thread in worker
#: processes so that N workers do not each start N BLAS threads.
_THREAD_LIMIT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def init_thread_worker() -> None:
    """Mark the current thread as one of the library's pool threads."""
    _local.in_worker = True


def stop_views(memory: memoryview) -> tuple[memoryview, memoryview]:
    """The stop tokens' marks (64-bit, two a slot) and flags (a byte a slot) in the board's ``memory``."""
    slots = len(memory) // STOP_SLOT_BYTES
    return memory[: 16 * slots].cast("q"), memory[16 * slots : STOP_SLOT_BYTES * slots]


def init_process_worker(parent: Connection | None = None, stop_board: Any = None, clocks: Any = None) -> None:
    """Prepare a freshly started worker process.

    Args:
        parent: the read end of a pipe whose write end only the parent process holds
            (see ``watch_parent``); ``None`` to watch nothing.
        stop_board: the memory of the parent's stop tokens (a
            ``multiprocessing.heap.BufferWrapper``, see ``_backends.stop_tokens.Board``), read
            before each item of a chunk that names a slot.
        clocks: the memory of the board's clocks, where the parent gives each worker one
            of its own (by pid) and the worker notes each item of a chunk with a task
            timeout.
    """
    global _in_worker_process, _stop_marks, _stop_flags, _clocks  # noqa: PLW0603 - one flag, one board per process
    _in_worker_process = True
    if stop_board is not None:
        _stop_marks, _stop_flags = stop_views(stop_board.create_memoryview())
    if clocks is not None:
        _clocks = clocks.create_memoryview().cast("q")
    for name in _THREAD_LIMIT_VARIABLES:
        os.environ.setdefault(name, "1")
    if parent is not None:
        watch_parent(parent)


def retire() -> None:
    """End this worker process once the task it runs has sent its result (``worker_loop``)."""
    global _retired  # noqa: PLW0603 - one flag per process
    _retired = True


def retiring() -> bool:
    """Whether this worker process ends after its task (``retire``)."""
    return _retired


def items_run(more: int = 0) -> int:
    """How many items this worker process has run, ``more`` counted first (``max_tasks_per_worker``)."""
    global _items_run  # noqa: PLW0603 - one count per process
    _items_run += more
    return _items_run


def _own_clock() -> memoryview | None:
    """This worker's clock: the entry the parent wrote its pid in; ``None``: none (yet).

    Waited for, briefly, the first time only: a worker given none then (every clock
    taken) looks again at each chunk, without waiting.
    """
    global _clock, _clock_waited  # noqa: PLW0603 - found once
    clocks = _clocks
    if _clock is not None or clocks is None:
        return _clock
    pid, deadline = os.getpid(), time.monotonic() + (0.0 if _clock_waited else CLOCK_WAIT_SECONDS)
    _clock_waited = True
    while True:
        for entry in range(0, len(clocks), CLOCK_FIELDS):
            if clocks[entry] == pid:
                _clock = clocks[entry : entry + CLOCK_FIELDS]
                return _clock
        if time.monotonic() > deadline:
            return None
        time.sleep(0.001)


# --- the watch on the parent ---------------------------------------------------------------
# A worker of a process pool waits for tasks on a queue whose write end it holds itself,
# so it never learns that the parent is gone: killed by SIGKILL (the OOM killer, a
# supervisor, a CI timeout) or by SIGTERM's default action, which runs no clean-up. And
# while any worker lives, the forkserver (whose "alive" pipe every worker holds a write
# end of) and the resource tracker live too. So each worker watches a pipe of its own:
# the parent holds its only write end, and the pipe reads as ended (EOF) the moment the
# parent is gone, by whatever means, since the kernel closes a dead process's files.
#
# On Linux the kernel itself ends the worker then: the worker opens the pipe anew (a
# file description of its own, through /proc) and asks for SIGIO on it (O_ASYNC), whose
# default action ends the process at once, even in the middle of a C call that holds
# the GIL. Where that cannot be set up, or a self-test finds the signal is not
# delivered (some sandboxes), a daemon thread blocks on the pipe and ends the process
# when it reads EOF (within a switch interval of an item that runs bytecode).
# prctl(PR_SET_PDEATHSIG) does not serve: a forkserver's workers are the server's
# children, not the parent's, and the signal fires when the *thread* that started a
# process ends, not the process (pools here start from short-lived threads).

#: The exit status of a worker that found its parent gone (the watch thread's; the
#: kernel's SIGIO ends it with that signal).
ORPHAN_EXIT = 70


def watch_parent(parent: Connection) -> None:
    """End this process as soon as ``parent``'s write end is closed everywhere (the parent died).

    Args:
        parent: the read end of the pipe; nothing is ever written to it.
    """
    if not _signal_on_eof(parent.fileno()):
        threading.Thread(target=_exit_on_eof, args=(parent,), name="concurrency_kit-parent-watch", daemon=True).start()


def _exit_on_eof(parent: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):  # the end of the pipe, or of the worker
        parent.recv_bytes()
    os._exit(ORPHAN_EXIT)


def _signal_on_eof(fd: int) -> bool:
    """Have the kernel send this process SIGIO (default action: end it) when ``fd``'s pipe ends.

    Returns:
        Whether that is set up (the descriptor opened for it stays open for the process's life).
    """
    import signal  # noqa: PLC0415 - only a worker's start needs it

    if (
        sys.platform == "win32"
        or not hasattr(signal, "sigtimedwait")  # for the self-test; not on macOS
        or signal.getsignal(signal.SIGIO) is not signal.SIG_DFL
        or threading.current_thread() is not threading.main_thread()
    ):
        return False
    try:
        # Flags and the owner of a signal belong to a file description, which every
        # worker (and the parent) would share through the inherited descriptor: each
        # worker opens its own.
        own = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not _sigio_delivered():
            os.close(own)
            return False
        _ask_for_sigio(own)
        ended = os.read(own, 1) == b""  # the parent may have died before the signal was asked for
    except BlockingIOError:  # nothing to read, and a writer left: the parent lives
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.close(own)
        return False
    if ended:
        os._exit(ORPHAN_EXIT)
    return True


def _ask_for_sigio(fd: int) -> None:
    """Have this process get SIGIO when ``fd`` (a pipe's read end, with a description of its own) is ready."""
    import fcntl  # noqa: PLC0415 - POSIX only

    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)


def _sigio_delivered() -> bool:
    """Whether a pipe of our own whose writer closes brings this process SIGIO (a self-test).

    The signal is blocked in this thread and caught by a handler meanwhile: another
    thread of the process may be the one it goes to.
    """
    import signal  # noqa: PLC0415 - only a worker's start needs it

    caught: list[int] = []
    previous = signal.signal(signal.SIGIO, lambda signum, _frame: caught.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
    read_end, write_end = os.pipe()
    try:
        _ask_for_sigio(read_end)
        os.close(write_end)
        write_end = -1
        taken = signal.sigtimedwait({signal.SIGIO}, 0)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGIO, previous)
    return taken is not None or bool(caught)


def warm_up_worker(function: bytes | None) -> int:
    """Runs in each new worker, to start it; says which worker ran it.

    Args:
        function: the function the pool was started for, pickled by reference, or
            ``None``. Unpickling it imports its module now rather than on the first
            chunk; a failure is left for that chunk to report.
    """
    if function is not None:
        with contextlib.suppress(Exception):  # the first chunk meets it again, and says which item
            pickle.loads(function)
    return os.getpid()


def in_worker() -> bool:
    """Whether the caller runs inside one of the library's workers (thread or process)."""
    return _in_worker_process or _local.in_worker


class RemoteTraceback(Exception):  # noqa: N818 - named after what it holds, as in concurrent.futures
    """The formatted traceback of an exception raised in a worker process."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def _rebuild(exc: BaseException, text: str) -> BaseException:
    if exc.__cause__ is None:  # a cause that came with it (a WorkerInitError's) stays
        exc.__cause__ = RemoteTraceback(text)
    return exc


class ExceptionCarrier:
    """Pickles an exception together with its traceback text."""

    def __init__(self, exc: BaseException) -> None:
        import traceback  # noqa: PLC0415 - only needed once a task fails

        self.exc = exc
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.text = '\n"""\n' + "".join(lines) + '"""'

    def __reduce__(self) -> tuple[Callable[[BaseException, str], BaseException], tuple[BaseException, str]]:
        return _rebuild, (self.exc, self.text)


class AwaitableResult:
    """Sent back in place of an awaitable that ``fn`` returned in a worker process (it cannot be pickled).

    Awaitable itself, so that the calling process finds it among the results as it
    finds an awaitable returned there, and raises the ``TypeError`` that names the item.
    """

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        #: The type of what ``fn`` returned (``"coroutine"``).
        self.kind = kind

    def __await__(self) -> Any:
        raise TypeError(f"fn returned an awaitable ({self.kind}) in a worker process: it could not be sent back")


def _unsent(outcome: tuple[bool, Any], index: int, exc: BaseException) -> tuple[bool, Any]:
    """What goes back in place of ``outcome`` (of item ``index``), which cannot be pickled (``exc``)."""
    ok, value = outcome
    if ok:
        from inspect import isawaitable  # noqa: PLC0415 - only when a result cannot be sent back

        if isawaitable(value):
            close = getattr(value, "close", None)
            if close is not None:
                close()  # nobody awaits it: it must not warn that it was never awaited
            return True, AwaitableResult(type(value).__name__)
    error = UnpicklableTaskError(
        f"the {'result' if ok else 'exception'} of item {index} cannot be sent back from the worker process: "
        f"{exc}. Return picklable values, or use mode='thread' or 'serial'."
    )
    return False, ExceptionCarrier(error)


def ping() -> None:
    """An empty task: what an executor's round trip costs without work (this module is light to import)."""


def load_by_value(data: bytes) -> Any:
    """A function sent by value (``_backends.pickling.ByValue``): cloudpickle's bytes, compressed."""
    import zlib  # noqa: PLC0415 - only for functions sent by value

    return pickle.loads(zlib.decompress(data))


def _stopped(marks: memoryview | None, slot: int, index: int) -> bool:
    """Whether a mark of the token in ``slot`` stops item ``index`` (its flag is set)."""
    return marks is not None and (index > marks[2 * slot] or index > marks[2 * slot + 1])


def _mark_failed(marks: memoryview | None, flags: memoryview, slot: int, index: int) -> None:
    """Item ``index`` failed (before its chunk goes back): no item after it starts, in any worker."""
    if marks is not None:
        marks[2 * slot + 1] = min(marks[2 * slot + 1], index)
        flags[slot] = 1


def run_pickled_chunk(payload: bytes) -> bytes:
    """Run one chunk in a worker process.

    Args:
        payload: ``pickle.dumps((fn, start, items, collect, slot, clock, timed, limit))``;
            ``slot``: the stream's stop token on the board (``None``: none); ``clock``:
            the call's clock, noted on this worker's clock with each item's index, and
            (``timed``: a task timeout) when it started (``None``: none); ``limit``: with
            ``max_tasks_per_worker``, the most items this worker may run in its life: a
            chunk that would take it over runs none, and the worker says it is retired
            (it ends, and the pool starts another).

    Returns:
        Pickled: a list holding, per item run, ``pickle.dumps((True, result))`` or
        ``pickle.dumps((False, exception))``, each pickled on its own so that the
        caller can tell which item's outcome fails to unpickle; the seconds the
        items took here; and whether this worker reached its ``limit``. The chunk
        stops at the first exception unless ``collect`` (``return_exceptions=True``) is
        set, and before an item its stop token does not let start (the list is then
        shorter than ``items``); a failure lowers the token's mark to its item, before
        the chunk goes back.

    Before each item the token's flag is read (a byte: a few nanoseconds), and its marks
    only once it is set: reading the two 64-bit marks before every item cost ~90 ns an
    item, a fifth of a trivial item's time here.
    """
    fn, start, items, collect, slot, clock_of, timed, limit = pickle.loads(payload)
    if limit is not None and items_run() + len(items) > limit:  # it would go over: retired, it runs none
        retire()
        return pickle.dumps(([], 0.0, True), protocol=pickle.HIGHEST_PROTOCOL)
    marks, flags = _stop_marks, _stop_flags
    if slot is None or marks is None or flags is None:
        slot, flags = 0, _NO_FLAG
    clock = None if clock_of is None else _own_clock()
    began = time.perf_counter()
    if clock_of is None or clock is None:
        packed = _run_items(fn, start, items, collect, (slot, marks, flags), None, timed=False)
    else:
        clock[1] = clock_of
        try:
            packed = _run_items(fn, start, items, collect, (slot, marks, flags), clock, timed=timed)
        finally:
            clock[2], clock[3] = -1, 0  # runs no item (also after SystemExit)
    retired = limit is not None and items_run(len(packed)) >= limit
    if retired:
        retire()
    return pickle.dumps((packed, time.perf_counter() - began, retired), protocol=pickle.HIGHEST_PROTOCOL)


def _run_items(  # noqa: PLR0913, PLR0917 - a chunk's parts, positional for speed
    fn: Callable[[Any], Any],
    start: int,
    items: list[Any],
    collect: bool,  # noqa: FBT001
    token: tuple[int, memoryview | None, memoryview],
    clock: memoryview | None,
    *,
    timed: bool,
) -> list[bytes]:
    """``run_pickled_chunk``'s loop: each item's outcome pickled; each item noted on ``clock`` as it starts.

    The item's index tells the parent which item was at fault if this worker dies;
    ``timed`` (a task timeout), when it started too, so that the parent can stop it.
    """
    slot, marks, flags = token
    packed: list[bytes] = []
    for offset, item in enumerate(items):
        if flags[slot] and _stopped(marks, slot, start + offset):
            break  # the stream failed before it, or ended
        try:
            if clock is not None:
                clock[2] = start + offset
                if timed:
                    clock[3] = time.monotonic_ns()
            outcome: tuple[bool, Any] = (True, fn(item))
        except Exception as exc:  # noqa: BLE001 - sent back to the caller, which re-raises it
            outcome = (False, ExceptionCarrier(exc))
        if timed and clock is not None:
            clock[3] = 0
        try:
            packed.append(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - replaced by an error naming the item, or an AwaitableResult
            outcome = _unsent(outcome, start + offset, exc)
            packed.append(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        if not outcome[0] and not collect:
            if flags is not _NO_FLAG:
                _mark_failed(marks, flags, slot, start + offset)
            break
    return packed
