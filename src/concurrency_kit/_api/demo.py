"""``python -m concurrency_kit demo``: the seed chapter's experiments, re-run.

Each reference workload runs once under every mode; the table shows seconds and the
speed-up over the plain loop, and auto's plan reason is printed below it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO, final

import attrs

from .. import tasks
from .calls import ModeName, plan

__all__ = ["WORKLOADS", "Workload", "run_demo"]

_MODES: tuple[ModeName, ...] = ("serial", "thread", "process", "auto")


@final
@attrs.frozen
class Workload:
    """A reference task with its items and the chapter's point about it."""

    name: str
    fn: Callable[[Any], Any]
    items: Sequence[Any]
    lesson: str


WORKLOADS = (
    Workload("factorize × 4", tasks.factorize, tasks.SEED_NUMBERS, "bytecode holds the GIL: processes"),
    Workload("gcd × 8", tasks.gcd, tasks.GCD_PAIRS, "bytecode holds the GIL: processes"),
    Workload("slow_systemcall × 5", tasks.slow_systemcall, range(5), "blocking I/O: threads"),
    Workload("slow_systemcall × 50", tasks.slow_systemcall, range(50), "blocking I/O: a thread per item"),
    Workload("run_child × 8", tasks.run_child, [str(i) for i in range(8)], "waiting on child processes: threads"),
    Workload("derive_key × 16", tasks.derive_key, [str(i) for i in range(16)], "C code releases the GIL: threads"),
    Workload("square × 20000", tasks.square, range(20_000), "too little work: a plain loop"),
)


def _time(workload: Workload, mode: ModeName) -> tuple[float, str]:
    start = time.perf_counter()
    chosen = plan(workload.fn, workload.items, mode)
    chosen.run()
    return time.perf_counter() - start, chosen.reason if mode == "auto" else chosen.mode


def run_demo(out: TextIO, workloads: Sequence[Workload] = WORKLOADS) -> None:
    """Run every workload under every mode and write the table to ``out``."""
    name_width = max(len(w.name) for w in workloads)
    header = f"{'workload':<{name_width}}  " + "  ".join(f"{mode:>15}" for mode in _MODES) + "  auto chose"
    out.write(header + "\n" + "-" * len(header) + "\n")
    reasons: list[str] = []
    for workload in workloads:
        cells: list[str] = []
        serial = 0.0
        chose = ""
        for mode in _MODES:
            seconds, detail = _time(workload, mode)
            serial = serial or seconds
            cells.append(f"{seconds:7.3f}s {serial / seconds:5.1f}×")
            if mode == "auto":
                chose = detail.rsplit("→ ", 1)[-1]
                reasons.append(f"{workload.name} ({workload.lesson}):\n    {detail}")
        out.write(f"{workload.name:<{name_width}}  " + "  ".join(f"{c:>15}" for c in cells) + f"  {chose}\n")
        out.flush()
    out.write("\nseconds and speed-up over the plain loop; auto ran after the others, with warm pools.\n")
    out.write("\nWhy auto chose what it chose:\n" + "\n".join(reasons) + "\n")
