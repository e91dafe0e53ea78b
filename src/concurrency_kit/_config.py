"""Process-wide settings (:func:`configure`)."""

from __future__ import annotations

import threading
from typing import final

import attrs

__all__ = ["Config", "configure", "get_config"]

_START_METHODS = ("fork", "forkserver", "spawn")


def _default_start_method() -> str:
    import multiprocessing  # noqa: PLC0415 - kept out of package import

    # forkserver forks from a clean single-threaded server, so it is safe in a
    # program that already runs threads (this library starts some itself).
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _check_start_method(_: object, __: object, value: str | None) -> None:
    if value is not None and value not in _START_METHODS:
        raise ValueError(f"start_method must be one of {', '.join(map(repr, _START_METHODS))}, got {value!r}")


def _check_positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
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
        max_io_workers: the most threads auto mode gives an I/O-bound call.
    """

    start_method: str | None = attrs.field(default=None, validator=_check_start_method)
    max_io_workers: int = attrs.field(default=64, validator=_check_positive)

    def resolved_start_method(self) -> str:
        """The start method actually used (``start_method`` or the platform default)."""
        return self.start_method or _default_start_method()


_lock = threading.Lock()
_config = Config()


def get_config() -> Config:
    """Return the settings in force."""
    return _config


_UNSET: object = object()


def configure(*, start_method: str | object | None = _UNSET, max_io_workers: int | object = _UNSET) -> Config:
    """Change process-wide settings; arguments left out keep their value.

    A change of ``start_method`` takes effect when the process pool is next created:
    call :func:`shutdown` first to replace a warm one.

    Args:
        start_method: ``"forkserver"``, ``"spawn"``, ``"fork"``, or ``None`` for the
            platform default.
        max_io_workers: the most threads auto mode gives an I/O-bound call (≥ 1).

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
