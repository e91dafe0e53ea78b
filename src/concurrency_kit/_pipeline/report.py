"""Where a pipeline's time went: a record per stage, the bottleneck, the fused stages.

A stage's seconds are split three ways, from the inboxes around it (``_run/inbox.py``):

    waiting   its input was empty while it could have taken more (the stages before it are slower)
    blocked   the next stage's input was full (the stages after it are slower)
    busy      the rest: it had items to work on and room to hand results on

The bottleneck is the stage busy the largest share of its time: the one the others wait
for. Both the stages around it show it: the one before is blocked, the one after waits.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = ["PipelineReport", "StageReport"]


@attrs.frozen
class StageReport:
    """One stage of a pipeline, as it ran (so far).

    Attributes:
        name: the stage's name (``fn.__name__`` unless given).
        mode: how its items run: ``"serial"``, ``"thread"``, ``"process"``,
            ``"executor"``, ``"async"``, or ``"inline"`` (a ``batch``); ``"starting"``
            before its first items are measured.
        workers: its threads, processes or coroutines at once.
        items_in: the items it took.
        items_out: the items it handed on (a ``filter`` drops some, a ``flat_map``
            makes more, a ``batch`` makes lists of them).
        busy: the seconds it had items to work on and room to hand results on.
        waiting: the seconds it waited for input.
        blocked: the seconds it waited for room in the next stage's input (or, the last
            stage, for the consumer).
        rate: the items it took per second of its run.
        reason: why it runs as it does (its plan's reason).
        moves: where it computes beside other computing stages, the workers it had in
            order: as planned, then each share of the pipeline's budget it was given
            (``workers`` is the last).
    """

    name: str
    mode: str
    workers: int
    items_in: int
    items_out: int
    busy: float
    waiting: float
    blocked: float
    rate: float
    reason: str = ""
    moves: tuple[int, ...] = ()


@attrs.frozen
class PipelineReport:
    """Where a pipeline's time went: ``str()`` is a table to read.

    Attributes:
        stages: a record for each stage, in order.
        bottleneck: the name of the stage that holds the others back (busy the largest
            share of its time); ``None`` before any stage ran.
        fused: the stages that ran inside one worker, as tuples of their names.
        seconds: how long the run has taken (so far).
    """

    stages: Sequence[StageReport]
    bottleneck: str | None
    fused: Sequence[tuple[str, ...]]
    seconds: float

    def __str__(self) -> str:
        rows = [("stage", "mode", "workers", "in", "out", "busy s", "waiting s", "blocked s", "items/s")]
        rows += [
            (
                ("* " if stage.name == self.bottleneck else "  ") + stage.name,
                stage.mode,
                "→".join(str(count) for count in stage.moves) if stage.moves else str(stage.workers),
                str(stage.items_in),
                str(stage.items_out),
                f"{stage.busy:.3f}",
                f"{stage.waiting:.3f}",
                f"{stage.blocked:.3f}",
                f"{stage.rate:.1f}",
            )
            for stage in self.stages
        ]
        widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(widths[col]) for col, cell in enumerate(row)).rstrip() for row in rows]
        lines.append(f"{self.seconds:.3f} s; bottleneck: {self.bottleneck or '-'} (*)")
        if self.fused:
            lines.append("fused: " + ", ".join(" + ".join(group) for group in self.fused))
        return "\n".join(lines)


def bottleneck_of(stages: Sequence[StageReport], seconds: float) -> str | None:
    """The stage busy the largest share of the run (the first of equals); ``None`` before any ran."""
    if not stages or seconds <= 0:
        return None
    busiest = max(stages, key=lambda stage: stage.busy)
    return busiest.name if busiest.busy > 0 else None
