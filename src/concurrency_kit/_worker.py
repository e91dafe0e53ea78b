"""Code that runs inside the library's worker threads and processes.

Kept small and free of heavy imports: a worker process imports it to run chunks.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading

from ._errors import UnpicklableTaskError

#: ``typing.TYPE_CHECKING``, without importing typing (a tenth of a worker's start-up).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "RemoteTraceback",
    "in_worker",
    "init_process_worker",
    "init_thread_worker",
    "run_pickled_chunk",
    "warm_up_worker",
]


class _ThreadState(threading.local):
    """Per thread: whether it is one of the library's pool threads."""

    #: A class default: a thread that never set it finds it here, without the
    #: AttributeError a missing attribute costs.
    in_worker = False


_local = _ThreadState()
_in_worker_process = False

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


def init_process_worker() -> None:
    """Prepare a freshly started worker process."""
    global _in_worker_process  # noqa: PLW0603 - one flag per process
    _in_worker_process = True
    for name in _THREAD_LIMIT_VARIABLES:
        os.environ.setdefault(name, "1")


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
    exc.__cause__ = RemoteTraceback(text)
    return exc


class _ExceptionCarrier:
    """Pickles an exception together with its traceback text."""

    def __init__(self, exc: BaseException) -> None:
        import traceback  # noqa: PLC0415 - only needed once a task fails

        self.exc = exc
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.text = '\n"""\n' + "".join(lines) + '"""'

    def __reduce__(self) -> tuple[Callable[[BaseException, str], BaseException], tuple[BaseException, str]]:
        return _rebuild, (self.exc, self.text)


def _pickle_error(what: str, index: int, exc: BaseException) -> UnpicklableTaskError:
    return UnpicklableTaskError(
        f"the {what} of item {index} cannot be sent back from the worker process: {exc}. "
        "Return picklable values, or use mode='thread' or 'serial'."
    )


def run_pickled_chunk(payload: bytes) -> bytes:
    """Run one chunk in a worker process.

    Args:
        payload: ``pickle.dumps((fn, start, items, collect))``.

    Returns:
        A pickled list holding, per item run, ``pickle.dumps((True, result))`` or
        ``pickle.dumps((False, exception))``, each pickled on its own so that the
        caller can tell which item's outcome fails to unpickle. The chunk stops at the
        first exception unless ``collect`` (``return_exceptions=True``) is set.
    """
    fn, start, items, collect = pickle.loads(payload)
    packed: list[bytes] = []
    for offset, item in enumerate(items):
        try:
            outcome: tuple[bool, Any] = (True, fn(item))
        except Exception as exc:  # noqa: BLE001 - sent back to the caller, which re-raises it
            outcome = (False, _ExceptionCarrier(exc))
        try:
            packed.append(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - replaced by an error naming the item
            what = "result" if outcome[0] else "exception"
            error = _pickle_error(what, start + offset, exc)
            outcome = (False, _ExceptionCarrier(error))
            packed.append(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        if not outcome[0] and not collect:
            break
    return pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)
