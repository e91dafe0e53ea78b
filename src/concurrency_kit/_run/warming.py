"""While a cold pool starts, the calling thread runs a list call's first items itself.

A cold process pool takes a fifth of a second or more to start. Auto, having turned a
loop down for it, should never do much worse than that loop: so rather than wait, the
calling thread runs items from the front of the input, a few milliseconds' worth at a
time, as a loop would. The moment a first worker is up, a thread of ours hands the
runner its first units (workers still starting take theirs as they come), even while
the calling thread is still in the middle of an item (which may be long); the calling
thread then finishes its span, and the engine's loop goes on. Only with no deadline:
an item running in the calling thread could not be stopped in time.

Between spans the calling thread lets go of the GIL: the pool is started by threads of
this process (ours, the executor's), each step of which needs it, and a caller that held
it for all but the forced switch every 5 ms made a pool start take 2-3 times as long.

The call's other threads here (the probe's, still running measured items) go first:
items that hold the GIL gain nothing from a second thread of the same process, which
would take turns with them, and with the threads starting the pool.

The sending thread and the calling thread share the engine's taking and storing under
one lock, held only between items, never while one runs.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, wait
from itertools import islice
from typing import TYPE_CHECKING, Any, final

import attrs

from .._backends.pools import submit_daemon
from .._backends.registry import Unit, Warming

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["HELP_SPAN", "HELP_WAIT", "Helping", "help_while_warming"]

#: While the pool starts, the calling thread runs spans of this fraction of a unit
#: (about a millisecond of work), checking in between whether a worker is up.
HELP_SPAN = 1 / 32
#: ... and, while the call's other threads here still run items, checks this often
#: whether they are done.
HELP_WAIT = 0.001


@final
@attrs.frozen
class Helping:
    """A list call whose calling thread may run items while the runner's workers start (``warming.py``).

    Attributes:
        others: done once the call's other threads here (the probe's) are through
            their measured items; the calling thread starts on items only then.
        computing: those threads compute holding the GIL: they take a CPU meanwhile,
            and the runner gets one unit fewer than it has workers until they are done.
    """

    others: Future[Any] | None
    computing: bool


def help_while_warming(engine: Engine, helping: Helping) -> None:
    """Run spans of the input in the calling thread while the runner's workers start (see the module's docstring).

    Raises:
        Exception: what sending the first units raised (an item that cannot be pickled).
    """
    warming = engine.runner.warming()
    if warming is None:
        return
    first = _FirstUnits(engine)
    submit_daemon(first.send_when_up, warming, name="concurrency_kit-first-units")
    others = helping.others
    span = max(1, int(engine.chunksize * HELP_SPAN))
    try:
        while others is not None and not first.sent and warming.is_alive():
            if not wait([others], timeout=HELP_WAIT).not_done:
                break
        while not first.sent and warming.is_alive() and (unit := first.take_here(span)) is not None:
            began = time.perf_counter()
            outcomes = engine.runner.run_here(unit)
            outcomes.seconds = time.perf_counter() - began  # timed as a worker times its units
            with first.lock:
                engine.store(unit, outcomes)
            time.sleep(0)  # let the threads starting the pool take the GIL
    finally:
        first.close()
    if first.error is not None:
        raise first.error


class _FirstUnits:
    """A call's first units, handed to the runner by a thread of ours the moment a worker is up."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        #: Held while either thread takes from the input or stores into the engine.
        self.lock = threading.Lock()
        self._closed = False
        #: Whether they were sent (the calling thread then stops running items itself).
        self.sent = False
        #: What sending them raised (an item that cannot be pickled), for the caller.
        self.error: Exception | None = None

    def take_here(self, size: int) -> Unit | None:
        """The next ``size`` items, for the calling thread to run (``None``: none left, or the call failed)."""
        engine = self._engine
        with self.lock:
            if self.sent or not engine.taking():
                return None
            chunk = list(islice(engine.rest, size))
            if not chunk:
                engine.exhausted = True
                return None
            unit = Unit(engine.taken, chunk)
            engine.taken += len(chunk)
            return unit

    def send_when_up(self, warming: Warming) -> None:
        """Wait for a first worker to be up, then have the engine take units, unless the caller closed first.

        Not for every worker: those still starting take units from the queue as they come.
        """
        warming.up.wait()
        with self.lock:
            if self._closed:
                return
            try:
                self._engine.take()
            except Exception as exc:  # noqa: BLE001 - the calling thread raises it
                self.error = exc
            self.sent = True

    def close(self) -> None:
        """Send nothing from now on; wait for a sending under way to end."""
        with self.lock:
            self._closed = True
