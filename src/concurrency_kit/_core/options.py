"""A call's options as one value: checked once, at the façade, and passed down by name.

Every public call (``run_parallel``, ``iter_parallel``, ``plan``, ``arun_parallel``,
``aiter_parallel``, ``AutoExecutor.map``) turns its keyword arguments into one
``CallOptions`` with ``call_options``; the decision and the run read it, and
nothing below the façade checks an argument again. The type aliases the public
signatures share (``ModeName``, ``ClassifierFn``, ``ProgressOption``) are
defined here, once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any, Literal, final, get_args

import attrs

from .kinds import TaskKind, is_coroutine_function
from .retrying import RetryPolicy, retry_policy
from .scope import check_executor, current_executor
from .share import Share

__all__ = [
    "MODES",
    "CallOptions",
    "ClassifierFn",
    "CostFn",
    "Mode",
    "ModeName",
    "PerItem",
    "ProgressCallback",
    "ProgressOption",
    "call_options",
    "check_count",
    "check_initializer",
    "check_timeout",
]

#: Every mode a caller may ask for (``mode=``).
ModeName = Literal["auto", "serial", "thread", "process", "executor", "async"]
#: The same, as a tuple, for run-time checks.
MODES: tuple[str, ...] = get_args(ModeName)
#: A concrete way of running a call, as decided (``"executor"``: on an executor the
#: caller gave; ``"async"``: coroutines on an event loop).
Mode = Literal["serial", "thread", "process", "executor", "async"]
#: A classifier: ``classifier(fn, sample) -> TaskKind | str | None`` (see ``register_classifier``).
ClassifierFn = Callable[[Callable[..., Any], tuple[Any, ...]], TaskKind | str | None]
#: A progress callback, told ``(done, total)`` as each result is yielded (``total``: ``None`` when unknown).
ProgressCallback = Callable[[int, int | None], object]
#: What ``progress=`` takes: ``True`` for a tqdm bar, a callback, or nothing.
ProgressOption = bool | ProgressCallback | None
#: What ``cost=`` takes: an item's cost, as any value that orders (a number, a length).
CostFn = Callable[[Any], Any]


@final
@attrs.frozen
class PerItem:
    """A call's options for each item, as the run engine settles their failures (``_run/retrying.py``).

    Attributes:
        retry: its retries, if any.
        task_timeout: the seconds an item may run, if limited.

    Neither, with an initializer: its ``WorkerInitError`` stops the call, collected or not.
    """

    retry: RetryPolicy | None = None
    task_timeout: float | None = None


@final
@attrs.frozen(kw_only=True)
class CallOptions:
    """The options of one call, checked.

    Attributes:
        mode: the mode asked for (``"auto"`` measures and chooses).
        workers: the caller's worker count, if given.
        chunksize: the caller's chunk size, if given.
        classifier: the call's own classifier, if given.
        return_exceptions: exceptions ``fn`` raises take their items' places.
        timeout: seconds the whole call may take; ``None`` when no wait could reach it.
        started: the ``time.monotonic()`` of the call, which the timeout counts from.
        executor: the executor the call runs on: the one given, or the enclosing
            ``use_executor`` block's (auto mode, not for a coroutine function).
        ordered: a stream yields in input order (else as results finish).
        max_in_flight: a stream's bound on items taken and not yet yielded, if given.
        progress: what ``progress=`` asked for.
        cost: a list call's key of what each item costs, if given: its items start
            dearest first (``_run/balancing.py``).
        retry: the call's retries, if it has any (``_core/retrying.py``).
        task_timeout: the seconds one item may run, from its start in a worker.
        initializer: run as ``initializer(*initargs)`` once in each worker before its
            first item of the call, if given.
        initargs: its arguments.
        max_tasks_per_worker: a worker process is replaced after this many items, if given.
        share: how many of its workers the call may keep busy, moved while it runs (a
            pipeline stage's share of the pipeline's budget), if it has one.
    """

    mode: str = "auto"
    workers: int | None = None
    chunksize: int | None = None
    classifier: ClassifierFn | None = None
    return_exceptions: bool = False
    timeout: float | None = None
    started: float = 0.0
    executor: Executor | None = None
    ordered: bool = True
    max_in_flight: int | None = None
    progress: ProgressOption = None
    cost: CostFn | None = None
    retry: RetryPolicy | None = None
    task_timeout: float | None = None
    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks_per_worker: int | None = None
    share: Share | None = None

    @property
    def deadline(self) -> float | None:
        """The ``time.monotonic()`` the call must end by, if it has a timeout."""
        return None if self.timeout is None else self.started + self.timeout

    @property
    def per_item(self) -> PerItem | None:
        """Its options for each item, if it has any."""
        if self.retry is None and self.task_timeout is None and self.initializer is None:
            return None
        return PerItem(self.retry, self.task_timeout)

    @property
    def auto(self) -> bool:
        """Whether the mode is measured and chosen."""
        return self.mode == "auto"


def call_options(  # noqa: PLR0913 - every option of the public calls, by name
    fn: object,
    items: object,
    *,
    started: float,
    mode: object = "auto",
    workers: object = None,
    chunksize: object = None,
    classifier: object = None,
    return_exceptions: bool = False,
    timeout: object = None,
    executor: object = None,
    ordered: bool = True,
    max_in_flight: object = None,
    progress: object = None,
    cost: object = None,
    retries: object = 0,
    retry_on: object = Exception,
    retry_delay: object = 0.0,
    task_timeout: object = None,
    initializer: object = None,
    initargs: object = (),
    max_tasks_per_worker: object = None,
) -> tuple[CallOptions, Iterator[Any] | None]:
    """Check a public call's arguments, in the order a caller reads them; make its options.

    Returns:
        The options, and an iterator over ``items`` (``None`` when they are a list,
        tuple or range, which are read in place).

    Raises:
        TypeError: ``fn``, ``classifier`` or ``cost`` is not callable, ``items`` is not
            iterable, a count is not an int, ``progress`` is neither a bool nor a
            callable, ``executor`` is not an executor, a coroutine function is
            given an executor, a retry option has the wrong type, ``initializer`` is
            not callable, or ``initargs`` is not a tuple.
        ValueError: an unknown mode, a count below 1, a timeout that is not positive,
            ``executor=`` with a mode other than auto or executor,
            ``mode="executor"`` without an executor, a retry option out of range, or
            ``task_timeout`` with ``mode="serial"`` (a loop cannot stop an item).
    """
    seconds = None if timeout is None else check_timeout(timeout)
    item_seconds = None if task_timeout is None else check_timeout(task_timeout, "task_timeout")
    if item_seconds is not None and mode == "serial":
        raise ValueError(
            "task_timeout needs a mode that can stop an item: a loop cannot (use mode='process', "
            "'thread' or 'auto', which never picks a loop with a task_timeout)"
        )
    iterator = _check_arguments(fn, items, mode, workers, chunksize, classifier)
    if max_in_flight is not None:
        check_count("max_in_flight", max_in_flight)
    if progress is not None and not isinstance(progress, bool) and not callable(progress):
        raise TypeError(f"progress must be True, False, None or a callable, got {type(progress).__name__}")
    if cost is not None and not callable(cost):
        raise TypeError(f"cost must be a callable (item -> a number) or None, got {type(cost).__name__}")
    retry = retry_policy(retries, retry_on, retry_delay)
    check_initializer(initializer, initargs)
    if max_tasks_per_worker is not None:
        check_count("max_tasks_per_worker", max_tasks_per_worker)
    options = CallOptions(
        mode=mode,  # type: ignore[arg-type]
        workers=workers,  # type: ignore[arg-type]
        chunksize=chunksize,  # type: ignore[arg-type]
        classifier=classifier,  # type: ignore[arg-type]
        return_exceptions=bool(return_exceptions),
        timeout=seconds,
        started=started,
        executor=executor_for(mode, executor, fn),
        ordered=ordered,
        max_in_flight=max_in_flight,  # type: ignore[arg-type]
        progress=progress,
        cost=cost,
        retry=retry,
        task_timeout=item_seconds,
        initializer=initializer,  # type: ignore[arg-type]
        initargs=initargs,  # type: ignore[arg-type]
        max_tasks_per_worker=max_tasks_per_worker,  # type: ignore[arg-type]
    )
    return options, iterator


def check_initializer(initializer: object, initargs: object) -> None:
    """Check ``initializer=`` (a callable or ``None``) and ``initargs=`` (a tuple).

    Raises:
        TypeError: either is not.
    """
    if initializer is not None and not callable(initializer):
        raise TypeError(f"initializer must be callable or None, got {type(initializer).__name__}")
    if not isinstance(initargs, tuple):
        raise TypeError(f"initargs must be a tuple, got {type(initargs).__name__} {initargs!r:.60}")


def check_count(name: str, value: object) -> None:
    """Check a count the caller gave (``None``, not given, is not checked).

    Raises:
        TypeError: ``value`` is not an int.
        ValueError: ``value`` is below 1.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """A timeout the caller gave, in seconds; ``None`` for one no wait can reach.

    Raises:
        TypeError: ``timeout`` is not a number.
        ValueError: ``timeout`` is not more than 0.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(timeout).__name__} {timeout!r}")
    if not timeout > 0:  # also rejects NaN
        raise ValueError(f"{name} must be more than 0 seconds, got {timeout}")
    if timeout >= threading.TIMEOUT_MAX:  # inf, or more than any wait can take: no limit
        return None
    return float(timeout)


def _check_arguments(  # noqa: PLR0913, PLR0917 - the arguments every public call takes
    fn: object, items: object, mode: object, workers: object, chunksize: object, classifier: object
) -> Iterator[Any] | None:
    """Check the arguments; return an iterator over ``items``, or ``None`` when they are a list, tuple or range."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if workers is not None:
        check_count("workers", workers)
    if chunksize is not None:
        check_count("chunksize", chunksize)
    if classifier is not None and not callable(classifier):
        raise TypeError(f"classifier must be callable or None, got {type(classifier).__name__}")
    if isinstance(items, list | tuple | range):
        return None
    try:
        return iter(items)  # type: ignore[call-overload, no-any-return]
    except TypeError:
        raise TypeError(f"items must be iterable, got {type(items).__name__}") from None


def executor_for(mode: object, executor: object, fn: object) -> Executor | None:
    """The executor a call runs on: the one given, else (in auto mode) its ``use_executor`` block's.

    ``None`` for a coroutine function in auto mode: its coroutines run on an event loop.

    Raises:
        TypeError: a coroutine function with an executor, or ``executor`` is not one.
        ValueError: ``executor=`` with a mode other than auto or executor, or
            ``mode="executor"`` with no executor.
    """
    if (executor is not None or mode == "executor") and is_coroutine_function(fn):
        raise TypeError(
            "fn is a coroutine function: its coroutines run on an event loop, not on an executor; "
            "drop executor= (mode='auto' runs them on an event loop)"
        )
    if executor is not None:
        check_executor(executor)
        if mode not in {"auto", "executor"}:
            raise ValueError(
                f"executor= runs the items on that executor: mode must be 'auto' or 'executor', got {mode!r}"
            )
        return executor  # type: ignore[return-value]
    if mode not in {"auto", "executor"}:
        return None
    scoped = current_executor()
    if scoped is None and mode == "executor":
        raise ValueError("mode='executor' needs an executor: pass executor=, or call inside use_executor()")
    return None if scoped is None or is_coroutine_function(fn) else scoped
