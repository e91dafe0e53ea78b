# pyright: reportUnknownMemberType=false, reportUntypedBaseClass=false, reportAttributeAccessIssue=false
# pyright: reportUnknownVariableType=false, reportUnknownArgumentType=false
# (This module repeats a private, untyped launch method of multiprocessing: see below.)
"""Forkserver workers that do not import the main module.

multiprocessing has every worker of a ``forkserver`` (or ``spawn``) pool import the
parent's main module, as ``__mp_main__``, so that functions and classes defined there
unpickle in the worker. For a program run as ``python -m NAME`` each worker imports it
anew, and everything it imports: a tenth of a second or more per worker, the bulk of a
pool's start-up, for tasks that mostly come from other modules. A pool whose tasks never
name the main module gets workers launched from this module's context instead, whose
preparation data leaves the main module out; the pools decide which (``_backends.pools``).

The preparation data is sent by a private method of multiprocessing, which this module
repeats (``Popen._launch`` of ``multiprocessing.popen_forkserver``), so it is used only
on the CPython versions whose launch it was checked against, 3.11 to 3.13; elsewhere
``forkserver_context_without_main`` returns ``None`` and workers import the main
module as usual. The forkserver preloads this module: a worker unpickles its own
process object, whose class is defined here.
"""

from __future__ import annotations

import io
import os
import sys

#: ``typing.TYPE_CHECKING``, without importing typing: the forkserver preloads this
#: module, and typing would add ~5 ms to every cold pool's start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["forkserver_context_without_main"]

#: What a worker's preparation data says about the main module.
_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")

# The CPython versions whose forkserver launch _PopenWithoutMain repeats (no forkserver
# on Windows; Python's floor is 3.11).
if sys.platform != "win32" and sys.version_info < (3, 14):
    from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util

    class _PopenWithoutMain(popen_forkserver.Popen):
        """The launch of a forkserver's worker, with no main module in its preparation data."""

        def _launch(self, process_obj: Any) -> None:
            data = spawn.get_preparation_data(process_obj._name)  # noqa: SLF001 - as multiprocessing's launch
            for key in _MAIN_KEYS:
                data.pop(key, None)
            message = io.BytesIO()
            context.set_spawning_popen(self)
            try:
                reduction.dump(data, message)
                reduction.dump(process_obj, message)
            finally:
                context.set_spawning_popen(None)
            self.sentinel, write_end = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
            # The worker watches a copy of the write end to learn that its parent is gone.
            parent_end = os.dup(write_end)
            close = util.close_fds  # type: ignore[attr-defined]
            self.finalizer = util.Finalize(self, close, (parent_end, self.sentinel))
            with open(write_end, "wb", closefd=True) as pipe:
                pipe.write(message.getbuffer())
            self.pid = forkserver.read_signed(self.sentinel)

    class _ProcessWithoutMain(context.ForkServerProcess):
        """A forkserver's worker process launched by ``_PopenWithoutMain``."""

        @staticmethod
        def _Popen(process_obj: Any) -> Any:  # noqa: N802 - multiprocessing's name
            return _PopenWithoutMain(process_obj)

    class _ContextWithoutMain(context.ForkServerContext):
        """The forkserver context, whose processes do not import the main module."""

        Process = _ProcessWithoutMain

    def forkserver_context_without_main() -> Any:
        """A forkserver context whose workers skip the main module (``None`` where unsupported)."""
        return _ContextWithoutMain()

else:

    def forkserver_context_without_main() -> Any:
        """A forkserver context whose workers skip the main module (``None`` where unsupported)."""
        return None
