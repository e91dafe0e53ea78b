"""Decisions on given figures: what tests hand auto in place of timing real items (``concurrency_kit._backends.given``).

A decision test gives the measurement (and, with the ``pinned`` fixture, the machine's
figures and CPU count), then asserts the exact mode, kind, workers, chunk size and the
reason's clauses: they follow from those figures alone, whatever else the machine runs.
The items still run, each once, for their results.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import attrs

from concurrency_kit._backends.given import Given, InWorker, Timing, using_measurements
from concurrency_kit._core.costmodel import STARTING, CostModel
from concurrency_kit._decide.probe import Measurement

__all__ = ["COLD", "SERVER_UP", "InWorker", "Timing", "given", "probed"]

_FORKSERVER = STARTING["forkserver"]
#: The forkserver's starting figures, a pool's start as dear whether or not the server
#: already runs (an earlier test may have started it): 180 ms.
COLD: CostModel = attrs.evolve(_FORKSERVER, restart=_FORKSERVER.cold_start)
#: As in a program past its first process-mode call: a pool starts from the running
#: forkserver, 40 ms, whether or not it runs in this test session.
SERVER_UP: CostModel = attrs.evolve(_FORKSERVER, cold_start=_FORKSERVER.restart)


def probed(  # noqa: PLR0913 - a measurement's figures, by name
    item_wall: float,
    cpu_share: float,
    *,
    items: int = 2,
    completed: int | None = None,
    gil_share: float | None = None,
    parallelism: float | None = None,
    exact: bool = True,
) -> Measurement:
    """What the probe reports of ``items`` items of ``item_wall`` seconds, ``cpu_share`` of it computing.

    ``exact``: every item finished (``completed`` defaults to all of them); else the
    figures are lower bounds of items still running (``completed`` defaults to none).
    """
    done = (items if exact else 0) if completed is None else completed
    return Measurement(
        items=items,
        completed=done,
        seconds=item_wall * max(1, done),
        item_wall=item_wall,
        item_cpu=item_wall * cpu_share,
        cpu_share=cpu_share,
        gil_share=gil_share,
        exact=exact,
        parallelism=parallelism,
    )


def given(
    *,
    probe: Measurement | None = None,
    final: Measurement | None = None,
    gil_held: bool | None = None,
    here: Timing | None = None,
    in_worker: InWorker | None = None,
) -> AbstractContextManager[Given]:
    """Have measuring report these figures inside the block (see ``concurrency_kit._backends.given``)."""
    return using_measurements(Given(probe=probe, final=final, gil_held=gil_held, here=here, in_worker=in_worker))
