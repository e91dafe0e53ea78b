"""Can something be sent to a worker process, how, and at what size?

Functions go by reference (module and name), as the standard pickle sends them. When
cloudpickle is installed (``pip install "concurrency_kit[cloudpickle]"``), a function
the standard pickle cannot send that way — a lambda, a closure, a function defined in
``__main__``, a notebook cell or an interactive session — goes by value instead:
cloudpickle's bytes, wrapped in ``ByValue``, which the worker unpickles (it needs
cloudpickle installed too, as a pool of this machine's processes has). Items and
results always go through the standard pickle.
"""

from __future__ import annotations

import importlib
import pickle
import sys
import zlib
from types import ModuleType
from typing import Any, final

__all__ = [
    "ByValue",
    "by_value_pickler",
    "importable_main",
    "needs_main",
    "pickled",
    "pickled_size",
    "sendable",
    "why_not_picklable",
]

#: What a message says where cloudpickle would have sent a function.
BY_VALUE_HINT = 'pip install "concurrency_kit[cloudpickle]" sends it by value'
_UNSET: Any = object()
#: The cloudpickle module, once looked for (``None``: not installed, or switched off).
_cloudpickle: ModuleType | None = _UNSET


def by_value_pickler() -> ModuleType | None:
    """cloudpickle, when installed; ``None`` otherwise."""
    global _cloudpickle  # noqa: PLW0603 - looked for once
    if _cloudpickle is _UNSET:
        try:
            _cloudpickle = importlib.import_module("cloudpickle")
        except ImportError:
            _cloudpickle = None
    return _cloudpickle


@final
class ByValue:
    """A function pickled by value (cloudpickle), to be rebuilt in the worker.

    The bytes are compressed: besides being smaller, they then never spell the main
    module's name, which the pools read as "this task needs workers that import the
    main module" (see ``needs_main``): a function sent by value needs no import.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        from .worker import load_by_value  # noqa: PLC0415 - the worker's side, imported there anyway

        return load_by_value, (self.data,)


def _interactive_main(fn: Any) -> bool:
    """Whether ``fn`` lives in a ``__main__`` that worker processes cannot import (``python -c``, a notebook)."""
    if getattr(fn, "__module__", None) != "__main__":
        return False
    main = sys.modules.get("__main__")
    return getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None


def sendable(fn: Any) -> Any:
    """What goes to a worker in ``fn``'s place: ``fn`` itself, or a ``ByValue`` of it.

    By value (with cloudpickle installed) when the standard pickle cannot send it by
    reference, or it lives in ``__main__``: workers then need not import the main
    module (which re-runs a script that lacks the ``if __name__ == "__main__":`` guard).
    """
    # By reference first: cloudpickle is imported only for a function that needs it (its
    # import costs a fresh interpreter's first call milliseconds).
    if getattr(fn, "__module__", None) != "__main__":
        try:
            pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - not by reference: by value, below
            pass
        else:
            return fn
    cloudpickle = by_value_pickler()
    if cloudpickle is None:
        return fn
    try:
        return ByValue(zlib.compress(cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL), 1))
    except Exception:  # noqa: BLE001 - neither way: the caller's pickling says why
        return fn


def importable_main(fn: Any) -> bool:
    """Whether ``fn`` lives in a ``__main__`` that worker processes can import (a script's, not a notebook's)."""
    return getattr(fn, "__module__", None) == "__main__" and not _interactive_main(fn)


def why_not_picklable(fn: Any) -> str | None:
    """Say why ``fn`` cannot run in a worker process, or return ``None`` if it can.

    Catches what pickling catches (lambdas, closures, bound methods of unpicklable
    objects) and one thing it does not: a function defined in a ``__main__`` that a
    worker cannot import (an interactive session, ``python -c``, a notebook). With
    cloudpickle installed, only what cloudpickle cannot pickle either.
    """
    if isinstance(sendable(fn), ByValue):
        return None
    try:
        pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - any failure means "not picklable"; the text says which
        hint = (
            "" if by_value_pickler() is not None else '; pip install "concurrency_kit[cloudpickle]" sends it by value'
        )
        return f"{_name(fn)} cannot be pickled ({type(exc).__name__}: {exc}){hint}"
    if _interactive_main(fn):
        hint = (
            "" if by_value_pickler() is not None else ' (pip install "concurrency_kit[cloudpickle]" sends it by value)'
        )
        return f"{_name(fn)} is defined in an interactive __main__ that worker processes cannot import{hint}"
    return None


#: Pickled bytes that name the main module. A task whose function or items pickle to
#: them needs workers that import the main module; other pools' workers skip it.
_MAIN_REFERENCE = b"__main__"


def needs_main(payload: bytes | None) -> bool:
    """Whether a pickled task refers to the main module (by name, as pickle does)."""
    return payload is not None and _MAIN_REFERENCE in payload


def pickled(obj: Any) -> bytes | None:
    """``obj`` pickled, or ``None`` if it cannot be pickled."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - "cannot be pickled" is the answer
        return None


def pickled_size(obj: Any) -> int | None:
    """The size of ``obj`` pickled, or ``None`` if it cannot be pickled."""
    data = pickled(obj)
    return None if data is None else len(data)


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
