"""Process-wide settings ([`configure`][concurrency_kit.configure])."""

from __future__ import annotations

import functools
import threading
from typing import final

import attrs

__all__ = ["IO_THREADS_MAX", "Config", "configure", "get_config"]

_START_METHODS = ("fork", "forkserver", "spawn")


@functools.cache  # the platform's: read once (the cost model asks on every decision)
def _default_start_method() -> str:
    import multiprocessing  # noqa: PLC0415 - kept out of package import

    # forkserver forks from a clean single-threaded server, so it is safe in a
    # program that already runs threads (this library starts some itself).
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _check_start_method(_: object, __: object, value: str | None) -> None:
    if value is not None and value not in _START_METHODS:
        raise ValueError(f"start_method must be one of {', '.join(map(repr, _START_METHODS))}, got {value!r}")


#: The most threads auto mode gives I/O-bound items when ``max_io_workers`` is not set.
#: Within it the cost model sizes each call (see ``_decide.sizing.io_threads``). The ceiling
#: holds on any number of CPUs, since the GIL serialises what every thread does between
#: its waits: taking an item and handing back its result cost about 45 µs an item here
#: (a round of 1,024 warm waits of 50 ms took 96 ms, of 256 took 62 ms), so past a few
#: hundred threads one round's dispatch is as long as the waits it overlaps. And a thread
#: holds about 35 KiB (17-19 KiB of the process's memory measured, and its kernel stack)
#: for as long as the shared pool keeps it (until [`shutdown`][concurrency_kit.shutdown]).
IO_THREADS_MAX = 512


def _check_positive(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is None and attribute.name == "max_io_workers":
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


@final
@attrs.frozen
class Config:
    """The settings in force.

    Attributes:
        start_method: how worker processes start: ``"forkserver"`` (the default on
            POSIX), ``"spawn"`` (the default elsewhere) or ``"fork"`` (unsafe once the
            program runs threads). ``None`` means the platform default.
        max_io_workers: the most threads auto mode gives an I/O-bound call, a hard
            limit; ``None`` (the default) lets the cost model choose for each call, up
            to ``IO_THREADS_MAX`` (512): one thread per item, unless starting
            the threads would cost more than the round of waits they save.
    """

    start_method: str | None = attrs.field(default=None, validator=_check_start_method)
    max_io_workers: int | None = attrs.field(default=None, validator=_check_positive)

    def resolved_start_method(self) -> str:
        """The start method actually used (``start_method`` or the platform default)."""
        return self.start_method or _default_start_method()

    def io_thread_cap(self) -> int:
        """The most threads an I/O-bound call may get: ``max_io_workers``, or ``IO_THREADS_MAX``."""
        return IO_THREADS_MAX if self.max_io_workers is None else self.max_io_workers


_lock = threading.Lock()
_config = Config()


def get_config() -> Config:
    """Return the settings in force."""
    return _config


_UNSET: object = object()


def configure(*, start_method: str | object | None = _UNSET, max_io_workers: int | object | None = _UNSET) -> Config:
    """Change process-wide settings; arguments left out keep their value.

    A change of ``start_method`` takes effect when the process pool is next created:
    call [`shutdown`][concurrency_kit.shutdown] first to replace a warm one.

    Args:
        start_method: ``"forkserver"``, ``"spawn"``, ``"fork"``, or ``None`` for the
            platform default.
        max_io_workers: the most threads auto mode gives an I/O-bound call (≥ 1), or
            ``None`` to let the cost model choose, up to ``IO_THREADS_MAX``.

    Returns:
        The new settings.

    Raises:
        ValueError: an unknown start method or a worker count below 1.
        TypeError: a worker count that is not an int.
    """
    global _config  # noqa: PLW0603 - the one process-wide setting
    changes: dict[str, object] = {}
    if start_method is not _UNSET:
        changes["start_method"] = start_method
    if max_io_workers is not _UNSET:
        changes["max_io_workers"] = max_io_workers
    with _lock:
        _config = attrs.evolve(_config, **changes)  # type: ignore[arg-type]
        return _config
