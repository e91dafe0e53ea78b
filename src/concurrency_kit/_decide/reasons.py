"""The text of a plan's reason: what was measured, the kind and where it came from, the choice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._backends.pickling import ByValue, sendable
from .._core.kinds import TaskKind
from .memory import Memo
from .plan import Choice, Reason, describe_measurement, format_seconds, render
from .probe import Measurement

__all__ = ["describe_memo", "explained", "from_memory", "with_pickler", "without_gil"]


def without_gil(reason: Reason) -> Callable[[], str]:
    """``reason``, saying that this interpreter runs without a GIL."""

    def text() -> str:
        return render(reason) + (
            "; the GIL is disabled (free-threaded CPython): computing items run side by side in threads, "
            "and the probe reads no GIL"
        )

    return text


def with_pickler(reason: Reason, fn: Callable[[Any], Any]) -> Callable[[], str]:
    """``reason``, saying so when ``fn`` goes to the workers by value (cloudpickle)."""

    def text() -> str:
        by_value = isinstance(sendable(fn), ByValue)
        return render(reason) + ("; the function goes by value (cloudpickle)" if by_value else "")

    return text


def explained(measurement: Measurement, kind: TaskKind, source: Reason, choice: Choice) -> Callable[[], str]:
    """The reason of a plan made on ``measurement``: the figures, the kind and where it came from, the choice."""

    def text() -> str:
        return f"{describe_measurement(measurement)} → {kind} (from {render(source)}); {choice.reason} → {choice.mode}"

    return text


def describe_memo(memo: Memo) -> str:
    return f"{memo.kind}, {format_seconds(memo.item_seconds)} per item"


def from_memory(memo: Memo, measured: Reason | None = None) -> Callable[[], str]:
    """Where a kind came from when an earlier call's figures count: what writes it."""

    def text() -> str:
        remembered = f"what an earlier call measured ({describe_memo(memo)})"
        return remembered if measured is None else f"{render(measured)}, and {remembered}"

    return text
