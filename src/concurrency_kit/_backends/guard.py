"""Is the main module running a call outside an ``if __name__ == "__main__":`` guard?

A worker process of a ``forkserver`` or ``spawn`` pool that needs the main module (the
function or an item is defined there) imports it, as ``__mp_main__``. A script whose
call is not under the guard then runs again in every worker, up to the call, which
multiprocessing refuses with a bootstrapping ``RuntimeError`` and the pool breaks.
concurrency_kit looks before it starts such a pool: the main module's top-level frame
is on the calling thread's stack while the script runs, and its source says whether
that frame's line lies in the guard's body. ``check_main_guard`` raises
``MainGuardMissingError`` where a pool about to start would meet that.
"""

from __future__ import annotations

import ast
import functools
import os
import sys

from .._core.config import get_config
from .._core.errors import MainGuardMissingError

__all__ = ["GUARD_FIX", "check_main_guard", "main_guard_missing"]

#: What to add, as messages say it.
GUARD_FIX = 'put the call under `if __name__ == "__main__":`'


def check_main_guard(*, main: bool) -> None:
    """Raise ``MainGuardMissingError`` where workers importing the main module would run the script again.

    ``main``: the task needs the main module. ``spawn`` workers import it whatever the
    task; ``forkserver`` workers only for a task that needs it; ``fork`` workers never
    (they have it already). Not for a call from a thread other than the script's own
    (the script's line is not on its stack).
    """
    method = get_config().resolved_start_method()
    if method == "fork" or (not main and method != "spawn"):
        return
    if main_guard_missing():
        raise MainGuardMissingError(
            "this task needs worker processes that import the main module (its function, or an item's class, "
            f"is defined there{'' if main else ', or they start by spawn'}), and the main module runs this call "
            "outside its guard: each worker would run "
            f"the script again. {GUARD_FIX.capitalize()}, or define the function and classes in a module of "
            'their own (pip install "concurrency_kit[cloudpickle]" sends a function by value); '
            "mode='thread' or 'serial' need neither."
        )


def main_guard_missing() -> bool:
    """Whether this call runs in the main module's top-level code, outside its guard.

    ``False`` when the main module is done running its top level (the call comes
    later), has no source file (an interactive session), or its source cannot be read.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return False
    namespace = vars(main)
    frame = sys._getframe(1)  # noqa: SLF001  # pyright: ignore[reportPrivateUsage] - the stack says where the call is
    while frame is not None:
        if frame.f_globals is namespace and frame.f_code.co_name == "<module>":
            break
        frame = frame.f_back  # type: ignore[assignment]
    else:
        return False
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return False
    guards = _guards(path, stamp)
    return guards is not None and not any(first <= frame.f_lineno <= last for first, last in guards)


@functools.lru_cache(maxsize=8)
def _guards(path: str, stamp: int) -> tuple[tuple[int, int], ...] | None:  # noqa: ARG001 - the cache key
    """The line spans of ``path``'s ``if __name__ == "__main__":`` bodies (``None``: unreadable)."""
    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    return tuple(
        (node.body[0].lineno, node.end_lineno or node.body[-1].lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_guard(node.test)
    )


def _is_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"``, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {_spelled(test.left), _spelled(test.comparators[0])}
    return sides == {"name", "main"}


def _spelled(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name) and node.id == "__name__":
        return "name"
    if isinstance(node, ast.Constant) and node.value == "__main__":
        return "main"
    return None
