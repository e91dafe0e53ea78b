"""What a call runs in ``fn``'s place: ``fn`` with its initializer's part and its retries' part.

    what_runs(fn, options)       Retried(Prepared(fn, init)): the initializer runs once per
                                 scope before the first item, a failure to retry comes back
                                 as a ``Raised`` (``_backends/item_calls.py``); for a
                                 coroutine function, their awaiting forms
    per_thread(fn)               the same, its initializer run once per thread (a thread
                                 runner's)

Without an initializer or retries, ``fn`` itself runs.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from typing import Any

from .._backends.item_calls import Init, Prepared, Retried, per_thread, prepared_in
from .._backends.pickling import sendable
from .._core.options import CallOptions

__all__ = ["init_of", "initialized_here", "per_thread", "what_runs"]


def what_runs(fn: Callable[[Any], Any], options: CallOptions, *, awaited: bool) -> Callable[[Any], Any]:
    """``fn`` as the call runs it (``awaited``: its results are awaited, a coroutine function's)."""
    init = init_of(options.initializer, options.initargs)
    if init is not None:
        if awaited:
            from .._backends.coroutines import PreparedAsync  # noqa: PLC0415 - asyncio, only for coroutines

            fn = PreparedAsync(fn, init)
        else:
            fn = Prepared(fn, init)
    policy = options.retry
    if policy is None:
        return fn
    if awaited:
        from .._backends.coroutines import RetriedAsync  # noqa: PLC0415 - asyncio, only for coroutines

        return RetriedAsync(fn, policy.retry_on)
    return Retried(fn, policy.retry_on)


def initialized_here(fn: Callable[[Any], Any]) -> float:
    """Run the call's initializer now, in this process (before its first items are measured here): its seconds.

    Raises:
        WorkerInitError: it raised.
    """
    prepared = prepared_in(fn)
    return 0.0 if prepared is None else prepared.ran_here()


def init_of(
    initializer: Callable[..., object] | None, args: tuple[Any, ...], *, by_reference: bool = False
) -> Init | None:
    """A call's initializer, with what tells it from another's: the digest of it and its initargs, pickled.

    One that cannot be pickled (it runs in this process only) is told by identity.
    ``by_reference``: sent as the standard pickle sends it (never by value).
    """
    if initializer is None:
        return None
    try:
        token = hashlib.sha1(pickle.dumps((sendable(initializer), args)), usedforsecurity=False).hexdigest()
    except Exception:  # noqa: BLE001 - not for another process: this one's identity tells it
        token = f"here:{id(initializer)}:{id(args)}"
    return Init(initializer, args, token, by_reference=by_reference)
