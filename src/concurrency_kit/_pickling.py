"""Can something be sent to a worker process, and at what size?"""

from __future__ import annotations

import pickle
import sys
from typing import Any

__all__ = ["pickled", "pickled_size", "why_not_picklable"]


def why_not_picklable(fn: Any) -> str | None:
    """Say why ``fn`` cannot run in a worker process, or return ``None`` if it can.

    Catches what pickling catches (lambdas, closures, bound methods of unpicklable
    objects) and one thing it does not: a function defined in a ``__main__`` that a
    worker cannot import (an interactive session, ``python -c``, a notebook).
    """
    try:
        pickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - any failure means "not picklable"; the text says which
        return f"{_name(fn)} cannot be pickled ({type(exc).__name__}: {exc})"
    module = getattr(fn, "__module__", None)
    if module == "__main__":
        main = sys.modules.get("__main__")
        if getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None:
            return f"{_name(fn)} is defined in an interactive __main__ that worker processes cannot import"
    return None


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
