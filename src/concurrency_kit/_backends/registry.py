"""Ways of running items, one module each, behind one small protocol.

Each backend is a ``Runner`` (``unit.py``): it runs the units (chunks of items) the
run engine (``_run/engine.py``) hands it, and reads what became of each. The engine
owns everything else — the window, the order, failures, timeouts, stopping — so a
backend knows nothing about how the mode was chosen, or about the call's shape:

    serial.py    LoopRunner      units run in the calling thread, as they are handed over
    thread.py    ThreadRunner    units on lanes of the shared thread pool
    process.py   ProcessRunner   units pickled for the shared process pool
    executor.py  ExecutorRunner  units as tasks of an executor the caller gave
    lanes.py     AsyncRunner     units' coroutines awaited by lane tasks on the engine's event loop
                                 (imported where a call runs coroutines: asyncio is not light)

A loop over a list whose items nothing else runs needs no runner: the engine's fast
path runs it as a list comprehension would.
"""

from __future__ import annotations

from .executor import ExecutorRunner, executor_name, executor_workers, task_overhead
from .process import ProcessRunner, Sent, send_first
from .serial import LoopRunner
from .thread import ThreadRunner
from .unit import Done, Lost, Read, Runner, Unit, Warming

__all__ = [
    "Done",
    "ExecutorRunner",
    "LoopRunner",
    "Lost",
    "ProcessRunner",
    "Read",
    "Runner",
    "Sent",
    "ThreadRunner",
    "Unit",
    "Warming",
    "executor_name",
    "executor_workers",
    "send_first",
    "task_overhead",
]
