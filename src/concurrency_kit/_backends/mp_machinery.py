"""multiprocessing's process-wide machinery, as the pools need it set.

multiprocessing keeps some state for the whole process, outside any pool: the modules
it imports once a first pool starts, the forkserver's preload list, and its record of
the forkserver it started. The pools (``_backends.pools``) set each here: the late
imports are done ahead (with this module), the preload list is extended before the
server starts, and a child made by ``os.fork()`` is detached from its parent's server.
Private attributes of multiprocessing are read defensively: where they are missing,
nothing is done.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from typing import Any

__all__ = ["PRELOAD_MODULES", "detach_forkserver", "preload_worker_modules"]

#: What multiprocessing imports only once the first pool starts. The process machinery
#: is imported with the pools (their own imports, and these, done here): a pool is started in a background
#: thread while the caller, or the probe's threads, run items holding the GIL, and an
#: import there makes hundreds of file-system calls, each of which then waits for the
#: GIL (up to a switch interval, 5 ms): seconds instead of ~25 ms.
_LATE_IMPORTS = (
    "multiprocessing.popen_fork",
    "multiprocessing.popen_forkserver",  # not on Windows
    "multiprocessing.popen_spawn_posix",  # not on Windows
    "multiprocessing.resource_tracker",
    "multiprocessing.synchronize",
    "tempfile",  # where a forkserver's socket goes
)


def _import_late_imports() -> None:
    for name in _LATE_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


_import_late_imports()

#: What the forkserver imports once, so that the workers it forks start with it: the
#: pool's worker loop, our chunk runner and the class of our workers (which import
#: nothing else of ours).
PRELOAD_MODULES = (
    "concurrency_kit._backends.worker_loop",
    "concurrency_kit._backends.worker",
    "concurrency_kit._backends.launch",
)


def preload_worker_modules(context: Any) -> None:
    """Have the forkserver import the worker modules once, so forked workers start warm.

    Without it each worker imports them on its first task. The preload list is
    process-wide and has no public getter: extend what is there, never replace it. It
    only matters before the server starts, and is harmless after.
    """
    from multiprocessing import forkserver  # noqa: PLC0415

    current = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or ["__main__"])
    missing = [name for name in PRELOAD_MODULES if name not in current]
    if missing:
        context.set_forkserver_preload([*current, *missing])


#: The attributes of multiprocessing's forkserver client that name a running server
#: (``_forkserver_authkey`` from Python 3.14).
_SERVER_STATE = ("_forkserver_address", "_forkserver_alive_fd", "_forkserver_pid", "_forkserver_authkey")


def detach_forkserver() -> None:
    """Have multiprocessing start a forkserver of this process's own when one is next needed.

    For a child made by ``os.fork()``, which cannot wait for its parent's server
    (``ChildProcessError``) and must not hold its "alive" pipe open. Where the private
    attributes are missing nothing is done (and a process pool in such a child may then
    fail).
    """
    module = sys.modules.get("multiprocessing.forkserver")
    server = getattr(module, "_forkserver", None)
    if server is None:
        return
    alive = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(alive, int):
        with contextlib.suppress(OSError):
            os.close(alive)
    for name in _SERVER_STATE:
        if hasattr(server, name):
            setattr(server, name, None)
    reinit = getattr(getattr(server, "_lock", None), "_at_fork_reinit", None)
    if reinit is not None:
        reinit()  # another thread of the parent may have held it while it forked
