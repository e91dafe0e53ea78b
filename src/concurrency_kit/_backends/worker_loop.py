"""The loop a worker process of the library's own process pool runs (``_backends.worker_pool``).

    parent ── task: pickle.dumps((fn, args)) ──▶ [its own pipe] ──▶ worker: fn(*args)
    parent ◀── b"" once up, then per task: pickle.dumps((ok, value)) ──┘
               and b"R" after the last one, where the worker retires
    parent ── b"" ──▶ the worker ends (or its pipe ends: the parent closed it, or died)

Each worker has a pipe of its own, so a worker that dies takes nothing with it but the
task it was running: no lock or queue is shared between workers. A task is a
module-level function and its arguments; what it raises goes back with its traceback
text. A task may have the worker end once its result is sent (``worker.retire``): how a
worker that reached ``max_tasks_per_worker`` leaves. Kept light to import: the
forkserver preloads it.
"""

from __future__ import annotations

import contextlib
import pickle
import signal

from .worker import ExceptionCarrier, retiring

#: ``typing.TYPE_CHECKING``, without importing typing (a tenth of a worker's start-up).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from typing import Any

__all__ = ["RETIRED", "UP", "serve"]

#: What a worker says once it is up, and once it retires (no pickle starts so).
UP, RETIRED = b"", b"R"


def serve(conn: Connection, initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """A worker's life: ``initializer(*initargs)``, say it is up, then run the tasks ``conn`` brings.

    Ctrl-C at a terminal reaches every process of its group: a worker leaves it to the
    parent, which stops (or kills) its workers as a call ends. A pipe that ends (the
    parent closed it, or died) ends the worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)
    with contextlib.suppress(EOFError, OSError):
        conn.send_bytes(UP)
        while not retiring():
            task = conn.recv_bytes()
            if not task:
                return
            conn.send_bytes(_run(task))
        conn.send_bytes(RETIRED)


def _run(task: bytes) -> bytes:
    """One task's outcome, pickled: ``(True, result)`` or ``(False, exception with its traceback text)``."""
    try:
        fn, args = pickle.loads(task)
        outcome: tuple[bool, Any] = (True, fn(*args))
    except BaseException as exc:  # noqa: BLE001 - sent back to the caller, as concurrent.futures does
        outcome = (False, ExceptionCarrier(exc))
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - a result that cannot be sent back is the task's failure
        error = TypeError(f"the outcome of a task cannot be sent back from the worker process: {exc}")
        return pickle.dumps((False, ExceptionCarrier(error)), protocol=pickle.HIGHEST_PROTOCOL)
