"""A pipeline's progress, per stage, told in the consumer's thread: a tqdm bar a stage, or the caller's callable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .stages import StageState

__all__ = ["StageProgress", "Told", "told_by"]

#: A progress callable: told ``(stage name, done, total)`` in the consumer's thread.
StageProgress = Callable[[str, int, "int | None"], object]


class Told:
    """Each stage's count of items done, told when it moved: to a stacked tqdm bar, or to the callable.

    ``totals``: how many items each stage takes, where that is known (a sized source,
    through ``map`` and ``batch`` stages), else ``None``.
    """

    def __init__(
        self,
        names: Sequence[str],
        states: Sequence[StageState],
        totals: Sequence[int | None],
        *,
        progress: bool | StageProgress,
    ) -> None:
        self.names, self.states, self.totals = names, states, totals
        self.callback = None if progress is True else progress
        self.told = [-1] * len(names)
        self.bars: list[Any] = []
        if progress is True:
            from tqdm import tqdm  # noqa: PLC0415 - an optional extra, imported when asked for

            self.bars = [
                tqdm(desc=name, unit="item", position=number, total=totals[number]) for number, name in enumerate(names)
            ]

    def __call__(self) -> None:
        for number, state in enumerate(self.states):
            if state.done == self.told[number]:
                continue
            self.told[number] = state.done
            if self.bars:
                bar = self.bars[number]
                bar.set_description(f"{self.names[number]} ({state.mode})", refresh=False)
                bar.update(state.done - bar.n)
            elif callable(self.callback):
                self.callback(self.names[number], state.done, self.totals[number])

    def close(self) -> None:
        """Tell the last counts; close the bars."""
        self()
        for bar in self.bars:
            bar.close()


def told_by(
    names: Sequence[str],
    states: Sequence[StageState],
    totals: Sequence[int | None],
    *,
    progress: bool | StageProgress | None,
) -> Told | None:
    """What ``progress=`` becomes (``totals``: each stage's items, where known): ``None`` for none."""
    if progress is None or progress is False:
        return None
    return Told(names, states, totals, progress=progress)
