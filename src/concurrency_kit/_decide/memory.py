"""What auto mode learnt about a function, kept between calls.

After a call, auto remembers the function's kind and the time one item took. The next
call consults the cost model with that estimate first: when it says a plain loop, the
items are run in the calling thread at once, and the first few are timed to check the
estimate still holds — no probe threads, no waiting for GIL samples. When the estimate
drifted (the items now take far longer), the function is measured afresh.

What is remembered is keyed by the function's code where it has one, weakly: a lambda or
a closure made anew for every call, a bound method (a new object at every attribute
access) and a ``functools.partial`` of a function all find what the earlier calls of the
same code measured.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Any, final

import attrs

from .._backends.item_calls import unwrapped
from .._core.kinds import TaskKind
from .sizes import BySize

__all__ = ["SURE_AFTER", "LoopVerdict", "Memo", "forget_all", "recall", "remember"]


@final
@attrs.frozen
class LoopVerdict:
    """The cost model chose the plain loop for ``count`` items of ``item_seconds`` each.

    It chose so in ``setting`` (the declared kind, the caller's sizing, the CPUs and
    the state of the process pool), and were pickling free: the choice held for any
    item. Since longer and more items only favour pools, it holds for fewer items and
    shorter ones in the same setting.
    """

    count: int
    item_seconds: float
    setting: tuple[object, ...]

    def covers(self, count: int, item_seconds: float, setting: tuple[object, ...] | None) -> bool:
        """Whether the loop stands for ``count`` items of ``item_seconds`` in ``setting``."""
        return setting == self.setting and count <= self.count and item_seconds <= self.item_seconds


@final
@attrs.frozen
class Memo:
    """A function's kind and the serial time of one of its items, as last measured.

    ``loop`` keeps the cost model's last verdict for a loop, so that the next calls no
    larger need not ask it again. ``item_cpu``: of an I/O-bound item's time, the seconds
    it computed (threads take turns for the GIL then); ``None`` for other kinds.
    ``item_alone``: an I/O-bound item's time as last measured in a call that ran in
    processes, with no threads taking turns for the GIL beside it; ``None`` until then.
    ``in_processes``: whether the last call that ran I/O-bound items in a pool ran them
    in processes (rather than threads). ``readings``: how many probes in a row, up to
    ``SURE_AFTER``, named ``kind`` watching the GIL (a decisive one counts as
    ``SURE_AFTER``; 0: none did: it was declared, or measured where the GIL cannot be
    seen); see ``sure``. ``by_size``: how closely the times of the units a run timed
    followed their items' size; ``spread``: how much one item's time varied among them
    (a coefficient of variation); ``None`` until a run timed enough units (``sizes.py``).
    """

    kind: TaskKind
    item_seconds: float
    loop: LoopVerdict | None = None
    item_cpu: float | None = None
    item_alone: float | None = None
    in_processes: bool = False
    readings: int = 0
    by_size: BySize | None = None
    spread: float | None = None

    @property
    def sure(self) -> bool:
        """Whether the steps that cannot see the GIL may trust ``kind``.

        Computing items are told GIL-bound from GIL-free by watching the GIL and two
        threads running them. Where neither was decisive (the GIL held most of the
        time, or two threads computing side by side), the kind is a fallback, which a
        first run may get wrong (under a library's own lock). A step that measures in a
        worker, or in the calling thread alone, cannot correct that: so a computing
        kind is trusted there once decisive, or once two readings agreed, and re-read
        by the probe until then. Waiting is told from computing by the CPU share, which
        every step reads.
        """
        return self.kind is TaskKind.IO or self.readings >= SURE_AFTER


#: Readings in a row that make a computing kind sure (``Memo.sure``).
SURE_AFTER = 2

_lock = threading.Lock()
#: ``id(key)`` → a weak reference to the key, and its memo. Keyed by identity: a weak
#: key dictionary hashes and compares the code object itself, reading all of it, which
#: cost a tiny call more than the rest of its lookup when the caches are cold.
_memos: dict[int, tuple[weakref.ref[Any], Memo]] = {}


def _key(fn: Callable[..., Any]) -> object:
    """What ``fn``'s memory is kept under: the code it runs, when it has Python code (through a retry's wrapper).

    A callable that names its own key (``__concurrency_kit_memo__``: a pipeline's fused
    stages, whose call is made afresh each run) is known by it.
    """
    fn = unwrapped(fn)
    named = getattr(fn, "__concurrency_kit_memo__", None)
    if named is not None:
        return named
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)  # a bound method: its function
    return getattr(fn, "__code__", fn)


def _entry(key: object) -> tuple[weakref.ref[Any], Memo] | None:
    """The entry kept for ``key`` itself (not for a dead object whose id it reuses)."""
    entry = _memos.get(id(key))  # one dictionary read: no lock needed
    return entry if entry is not None and entry[0]() is key else None


def _dropper(ident: int) -> Callable[[weakref.ref[Any]], None]:
    """What forgets the key at ``ident`` once it is gone (no lock: it may run inside ``remember``)."""

    def drop(ref: weakref.ref[Any]) -> None:
        # Runs while the key is being freed, so no other object has its id yet.
        entry = _memos.get(ident)
        if entry is not None and entry[0] is ref:
            _memos.pop(ident, None)  # forget_all() may have cleared it meanwhile

    return drop


def remember(fn: Callable[..., Any], memo: Memo) -> None:
    """Keep ``memo`` for ``fn`` (silently not, for callables that take no weak reference)."""
    key = _key(fn)
    with _lock:
        entry = _entry(key)
        if entry is not None:
            _memos[id(key)] = (entry[0], memo)
            return
        try:
            ref = weakref.ref(key, _dropper(id(key)))
        except TypeError:  # not weak-referenceable
            return
        _memos[id(key)] = (ref, memo)


def recall(fn: Callable[..., Any]) -> Memo | None:
    """What was remembered about ``fn``, if anything."""
    entry = _entry(_key(fn))
    return None if entry is None else entry[1]


def forget_all() -> None:
    """Forget every function (tests, and [`shutdown`][concurrency_kit.shutdown])."""
    with _lock:
        _memos.clear()
