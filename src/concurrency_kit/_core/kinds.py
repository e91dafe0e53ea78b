"""Task kinds, and whether a function is a coroutine function (told from its definition)."""

from __future__ import annotations

import enum
import functools
import inspect
from typing import Any, cast


class TaskKind(enum.StrEnum):
    """What limits a task, and therefore how it should run.

    Members compare equal to their string values.
    """

    #: Mostly waiting (sockets, files, sleeps, child processes): many threads.
    IO = "io"
    #: Python bytecode that holds the GIL: processes, one per core.
    CPU = "cpu"
    #: CPU work in C code that releases the GIL (hashlib, zlib on large buffers):
    #: threads, one per core.
    GIL_FREE = "gil_free"
    #: A coroutine function (``async def``): its coroutines run on an event loop, many
    #: at a time, in one thread.
    ASYNC = "async"


def is_coroutine_function(fn: object) -> bool:
    """Whether calling ``fn`` makes a coroutine, told from its definition without calling it.

    True for an ``async def`` function or method, a ``functools.partial`` of one, a
    callable object whose ``__call__`` is ``async def``, and a function marked with
    ``inspect.markcoroutinefunction`` (Python 3.12 and later).
    """
    target: Any = fn
    while isinstance(target, functools.partial):
        target = cast(Any, target.func)
    if inspect.iscoroutinefunction(target):
        return True
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target) or isinstance(target, type):
        return False
    klass: Any = target.__class__
    call: Any = getattr(klass, "__call__", None)  # noqa: B004 - the instance's class, not callable()
    return call is not None and inspect.iscoroutinefunction(call)
