"""Task kinds, the classifier extension point, and the kind read off a measurement.

A kind comes from the first of these that gives one (see ``declared_kind``):

0. the function's definition: a coroutine function is [`TaskKind.ASYNC`][concurrency_kit.TaskKind.ASYNC], whatever
   a classifier would say (``is_coroutine_function``);
1. the call's ``classifier=``;
2. a declaration made with ``io_bound``, ``cpu_bound`` or ``gil_free``;
3. the classifiers added with [`register_classifier`][concurrency_kit.register_classifier], newest first;
4. the built-in measurement (``kind_from_measurement``), fed by the probe.

A classifier sees the function and a sample of the first items; it never calls the
function and knows nothing about pools.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, final

import attrs
from typing_extensions import Protocol, runtime_checkable

from .._backends.stage_calls import StageCall
from .._core.in_force import InForce
from .._core.kinds import TaskKind, is_coroutine_function

__all__ = [
    "READING",
    "Classifier",
    "Decision",
    "Reading",
    "TaskKind",
    "agrees",
    "cpu_bound",
    "declaration",
    "declared_kind",
    "gil_free",
    "io_bound",
    "is_coroutine_function",
    "kind_from_measurement",
    "partly_waits",
    "register_classifier",
    "unregister_classifier",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=Callable[..., Any])


@runtime_checkable
class Classifier(Protocol):
    """A callable that names a task's kind without running it: ``classifier(fn, sample)``.

    Any function of that shape is one; this protocol names the shape for type checkers
    (and ``isinstance``).
    """

    def __call__(self, fn: Callable[..., Any], sample: tuple[Any, ...], /) -> TaskKind | str | None:
        """Classify ``fn`` from its first items.

        Args:
            fn: the function that will be mapped over the items. Must not be called.
            sample: the first few items (up to ``SAMPLE_SIZE``, 4), as a tuple.

        Returns:
            A [`TaskKind`][concurrency_kit.TaskKind] (or its string value), or ``None`` to abstain and let
            the next classifier, and finally the measurement, decide.
        """
        ...


#: How many leading items a classifier is shown.
SAMPLE_SIZE = 4

_KIND_ATTRIBUTE = "__concurrency_kit_kind__"
_registry_lock = threading.Lock()
#: Oldest first; consulted newest first. Replaced, never changed in place, so that a
#: call reads it without the lock.
_registry: tuple[Classifier, ...] = ()
_declared: dict[Any, TaskKind] = {}  # for callables that take no attributes (builtins)


@final
@attrs.frozen
class Decision:
    """A kind and who named it (used in the plan's reason)."""

    kind: TaskKind
    source: str


def register_classifier(classifier: C) -> C:
    """Add a classifier that every later call consults (newest first).

    Usable as a decorator; returns its argument unchanged. Registering the same
    classifier twice moves it to the front.

    Args:
        classifier: a callable ``classifier(fn, sample) -> TaskKind | str | None``.

    Returns:
        ``classifier`` itself.

    Raises:
        TypeError: ``classifier`` is not callable.
    """
    if not callable(classifier):
        raise TypeError(f"a classifier must be callable, got {type(classifier).__name__}")
    global _registry  # noqa: PLW0603 - replaced whole, under the lock
    with _registry_lock:
        _registry = (*(each for each in _registry if each != classifier), classifier)
    return classifier


def unregister_classifier(classifier: Callable[..., Any]) -> None:
    """Remove a classifier added with [`register_classifier`][concurrency_kit.register_classifier].

    Raises:
        ValueError: ``classifier`` is not registered.
    """
    global _registry  # noqa: PLW0603 - replaced whole, under the lock
    with _registry_lock:
        if classifier not in _registry:
            raise ValueError(f"{_describe(classifier)} is not a registered classifier")
        _registry = tuple(each for each in _registry if each != classifier)


def _declare(fn: F, kind: TaskKind) -> F:
    if not callable(fn):
        raise TypeError(f"@{_DECORATOR_NAMES[kind]} needs a callable, got {type(fn).__name__}")
    try:
        setattr(fn, _KIND_ATTRIBUTE, kind)
    except (AttributeError, TypeError):  # builtins and other attribute-less callables
        _declared[fn] = kind
    return fn


_DECORATOR_NAMES = {TaskKind.IO: "io_bound", TaskKind.CPU: "cpu_bound", TaskKind.GIL_FREE: "gil_free"}


def io_bound(fn: F) -> F:
    """Declare that ``fn`` mostly waits (network, disk, sleeps, child processes).

    Returns ``fn`` itself, so it stays picklable by reference. Auto mode then skips the
    kind measurement (it still times the first items to size the pool).

    Raises:
        TypeError: ``fn`` is not callable.
    """
    return _declare(fn, TaskKind.IO)


def cpu_bound(fn: F) -> F:
    """Declare that ``fn`` computes in Python bytecode, holding the GIL.

    Returns ``fn`` itself, so it stays picklable by reference.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    return _declare(fn, TaskKind.CPU)


def gil_free(fn: F) -> F:
    """Declare that ``fn`` computes in C code that releases the GIL.

    Returns ``fn`` itself, so it stays picklable by reference.

    Raises:
        TypeError: ``fn`` is not callable.
    """
    return _declare(fn, TaskKind.GIL_FREE)


def _coerce(value: object, who: str) -> TaskKind | None:
    if value is None:
        return None
    if isinstance(value, TaskKind):
        return value
    if isinstance(value, str):
        try:
            return TaskKind(value)
        except ValueError:
            pass
    valid = ", ".join(repr(k.value) for k in TaskKind)
    raise ValueError(f"{who} returned {value!r}; expected a TaskKind ({valid}) or None")


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"classifier {name}"


def declaration(fn: Callable[..., Any]) -> TaskKind | None:
    """The kind ``fn`` is declared as (``@cpu_bound``, ``@gil_free``, ``@io_bound``), if any."""
    return _declaration(fn)


def _declaration(fn: Callable[..., Any]) -> TaskKind | None:
    target: Any = fn
    while target is not None:
        kind = getattr(target, _KIND_ATTRIBUTE, None)
        if kind is None:
            try:
                kind = _declared.get(target)
            except TypeError:  # unhashable callable
                kind = None
        if kind is not None:
            return TaskKind(kind)
        # see through functools.partial and bound methods
        target = target.func if isinstance(target, functools.partial) else getattr(target, "__func__", None)
    return None


#: Why a coroutine function is [`TaskKind.ASYNC`][concurrency_kit.TaskKind.ASYNC] (the plan's reason says it).
COROUTINE_SOURCE = "its definition (a coroutine function)"


def declared_kind(
    fn: Callable[..., Any],
    items: Sequence[Any],
    classifier: Callable[..., Any] | None = None,
) -> Decision | None:
    """A coroutine function's kind, else consult the call's classifier, the declaration, then registered classifiers.

    Classifiers get the first ``SAMPLE_SIZE`` items, as a tuple; a coroutine
    function is [`TaskKind.ASYNC`][concurrency_kit.TaskKind.ASYNC] before any is asked.

    Returns:
        The first kind given, with its source, or ``None`` when every one abstained
        (the measurement then decides).

    Raises:
        ValueError: a classifier returned something that is not a kind.
    """
    if is_coroutine_function(fn):
        return Decision(TaskKind.ASYNC, COROUTINE_SOURCE)
    sample = tuple(items[:SAMPLE_SIZE]) if classifier is not None or _registry else ()
    if isinstance(fn, StageCall):  # a pipeline stage's: its function, on its items (without their source index)
        fn, sample = fn.fn, tuple(item for _, item in sample)
    if classifier is not None:
        kind = _coerce(classifier(fn, sample), f"the call's {_describe(classifier)}")
        if kind is not None:
            return Decision(kind, f"the call's {_describe(classifier)}")
    kind = _declaration(fn)
    if kind is not None:
        return Decision(kind, f"the @{_DECORATOR_NAMES[kind]} declaration")
    for each in reversed(_registry):
        kind = _coerce(each(fn, sample), f"registered {_describe(each)}")
        if kind is not None:
            return Decision(kind, f"registered {_describe(each)}")
    return None


@final
@attrs.frozen
class Reading:
    """The thresholds by which a measurement names a kind."""

    #: A monitor wake-up later than this fraction of the switch interval counts as "GIL
    #: held". (A wake-up with the GIL free is late by a tenth of a millisecond or so; one
    #: behind a GIL holder by anything up to the whole interval, 5 ms.)
    late_fraction: float = 0.2
    #: Share of monitor samples that must be late for the task to count as GIL-bound.
    gil_bound_share: float = 0.5
    #: Share of a running item's time spent on CPU above which it counts as computing.
    #: Two threads taking turns at the GIL each show about 0.5 (the probe runs such items
    #: in one thread, once it has seen the GIL held); waiting items near 0.
    compute_share: float = 0.3
    #: Items that compute show about 1 in each probe thread when nothing else wants the
    #: GIL (or they release it), 0.5 when two threads take turns for it, a busy machine less.
    computing_share: float = 0.7
    #: Two probe threads that computed more than this many CPUs' worth between them while
    #: both ran items cannot have been taking turns for the GIL (that is at most 1, a CPU
    #: at a time; free, on two idle CPUs, about 2). Below it the GIL may still have been
    #: free, with the other CPUs busy elsewhere, but threads would then gain little.
    parallel_share: float = 1.25
    #: Share of late monitor samples that says the GIL was held all along.
    gil_held_throughout: float = 0.9


_DEFAULT_READING = Reading()
#: The thresholds in force (tests set others for a block with ``READING.using``).
READING: InForce[Reading] = InForce("reading", lambda: _DEFAULT_READING)


def kind_from_measurement(
    cpu_share: float, gil_share: float | None, prior: TaskKind | None = None, parallelism: float | None = None
) -> TaskKind:
    """Name the kind from what the probe measured.

    Args:
        cpu_share: CPU time of the probe threads divided by the time they spent inside
            ``fn`` (0: all waiting; 1: computing all the time).
        gil_share: fraction of the monitor's wake-ups that were late because another
            thread held the GIL, or ``None`` when there were too few.
        prior: the kind an earlier call measured, if any: it settles what the GIL
            samples cannot, provided the CPU share agrees with it.
        parallelism: the probe threads' CPU seconds per second while two of them ran
            items, or ``None`` when they did not run side by side long enough.

    Returns:
        ``IO`` when the items mostly waited. Computing items are ``GIL_FREE`` when two
        threads computed side by side (``Reading.parallel_share``), a proof that the GIL
        was let go. Otherwise they are ``CPU`` when bytecode held the GIL most of the
        time; a computing prior stands, so that one call's reading does not flip a
        remembered kind. Else they count as ``CPU`` (the common case): the GIL monitor
        alone does not make them ``GIL_FREE``, since C code that keeps the GIL in short
        calls and lets it go between them (a system call) wakes it nearly on time.
    """
    reading = READING.get()
    if cpu_share < reading.compute_share:
        return TaskKind.IO
    if parallelism is not None and parallelism >= reading.parallel_share:
        return TaskKind.GIL_FREE
    if gil_share is not None and gil_share >= reading.gil_bound_share:
        return TaskKind.CPU
    if prior is not None and agrees(prior, cpu_share):
        return prior
    return TaskKind.CPU


def decisive(gil_share: float | None, parallelism: float | None) -> bool:
    """Whether the probe's GIL figures name a computing kind on their own, not by default.

    The GIL held most of the time, or two threads computing side by side, cannot be a
    misreading of the other kind. Else ``kind_from_measurement`` falls back on a prior or
    on ``CPU``, which a first run's quirks (a library set up under a lock of its own) can
    make wrong.
    """
    reading = READING.get()
    held = gil_share is not None and gil_share >= reading.gil_bound_share
    return held or (parallelism is not None and parallelism >= reading.parallel_share)


def partly_waits(kind: TaskKind, cpu_share: float, gil_share: float | None) -> bool:
    """Whether items named ``kind`` from shares measured while they ran may yet turn out to be I/O-bound.

    Items that compute first and wait after show a CPU share that falls as they run: by
    their middle, it can be above ``Reading.compute_share`` although they mostly wait. So
    a computing kind on a share below ``Reading.computing_share`` is in doubt, unless the
    GIL was held throughout (computing items that take turns for it show 0.5).
    """
    reading = READING.get()
    if kind is TaskKind.IO or cpu_share >= reading.computing_share:
        return False
    return kind is TaskKind.GIL_FREE or (gil_share is not None and gil_share < reading.gil_held_throughout)


def agrees(kind: TaskKind, cpu_share: float) -> bool:
    """Whether a measured CPU share fits ``kind`` (waiting for I/O, computing otherwise)."""
    return (kind is TaskKind.IO) == (cpu_share < READING.get().compute_share)
