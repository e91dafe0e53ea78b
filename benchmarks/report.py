"""Regret tables, the targets concurrency_kit's auto mode is held to, and the chart."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ALLOWANCE",
    "TARGETS",
    "check_targets",
    "format_table",
    "format_targets",
    "regret",
    "render_chart",
    "summarize",
]

#: Per phase: the largest regret auto may have on any workload, and its largest geomean.
TARGETS: dict[str, dict[str, float]] = {
    "warm": {"worst": 1.25, "geomean": 1.10},
    "cold": {"worst": 1.5, "geomean": 1.25},
}
AUTO = "ck/auto"
#: Per phase: how much of auto's time over the best runner's is free. A very short call
#: pays a fixed cost no decision can avoid (planning, warm: ~0.1 ms; a fresh
#: interpreter's first thread, cold: 0.3-0.4 ms), and on a call of half a millisecond
#: that alone is a regret of 1.5-4: auto's regret is max(1, (t_auto - allowance) / t_best).
ALLOWANCE: dict[str, float] = {"warm": 50e-6, "cold": 1e-3}

#: cells[workload][runner] = {"status": "ok" | "skipped" | "error", "seconds": ..., "note": ...}
Cells = Mapping[str, Mapping[str, Mapping[str, Any]]]


def regret(cells: Cells, phase: str | None = None) -> dict[str, dict[str, float | None]]:
    """Each cell's time over the best time any runner reached on its workload (None: no time).

    With ``phase``, auto's cells are given that phase's :data:`ALLOWANCE`.
    """
    allowance = ALLOWANCE.get(phase or "", 0.0)
    table: dict[str, dict[str, float | None]] = {}
    for workload, row in cells.items():
        times = {r: c["seconds"] for r, c in row.items() if c["status"] == "ok"}
        best = min(times.values(), default=None)
        table[workload] = {}
        for r in row:
            if r not in times or not best:
                table[workload][r] = None
            elif r == AUTO:
                table[workload][r] = max(1.0, (times[r] - allowance) / best)
            else:
                table[workload][r] = times[r] / best
    return table


def summarize(table: Mapping[str, Mapping[str, float | None]], runners: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per runner: geometric mean of its regrets, its worst regret and where, cells counted."""
    summary: dict[str, dict[str, Any]] = {}
    for runner in runners:
        values = [(w, row[runner]) for w, row in table.items() if row.get(runner) is not None]
        if not values:
            summary[runner] = {"geomean": None, "worst": None, "worst_workload": None, "cells": 0}
            continue
        worst_workload, worst = max(values, key=lambda pair: pair[1] or 0.0)
        geomean = math.exp(sum(math.log(v) for _, v in values if v) / len(values))
        summary[runner] = {"geomean": geomean, "worst": worst, "worst_workload": worst_workload, "cells": len(values)}
    return summary


def _cell_text(cell: Mapping[str, Any], value: float | None) -> str:
    if cell["status"] == "skipped":
        return "skip"
    if cell["status"] == "error":
        return "ERR"
    return f"{value:.2f}" if value is not None else "-"


def format_table(title: str, cells: Cells, runners: Sequence[str], phase: str | None = None) -> str:
    """The regret table: workloads down, runners across, then geomean and worst rows (``phase``: see :func:`regret`)."""
    table = regret(cells, phase)
    summary = summarize(table, runners)
    name_width = max([len("workload"), *(len(w) for w in cells)])
    width = max(9, *(len(r) + 1 for r in runners))
    header = f"{'workload':<{name_width}} {'best':>9} " + "".join(f"{r:>{width}}" for r in runners)
    lines = [title, header, "-" * len(header)]
    for workload, row in cells.items():
        times = [c["seconds"] for c in row.values() if c["status"] == "ok"]
        best = f"{min(times):.4f}s" if times else "-"
        line = f"{workload:<{name_width}} {best:>9} "
        line += "".join(f"{_cell_text(row[r], table[workload][r]):>{width}}" for r in runners)
        lines.append(line)
    lines.append("-" * len(header))
    for key in ("geomean", "worst"):
        values = [summary[r][key] for r in runners]
        lines.append(
            f"{key:<{name_width}} {'':>9} " + "".join(f"{'-' if v is None else f'{v:.2f}':>{width}}" for v in values)
        )
    where = "; ".join(f"{r} {summary[r]['worst_workload']}" for r in runners if summary[r]["worst_workload"])
    lines.append(f"worst at: {where}")
    notes = [
        f"  {w} / {r}: {c['status']}: {c.get('note')}"
        for w, row in cells.items()
        for r, c in row.items()
        if c["status"] != "ok"
    ]
    if notes:
        lines.append("not measured:")
        lines.extend(notes)
    return "\n".join(lines)


def check_targets(phase: str, cells: Cells, runners: Sequence[str]) -> dict[str, Any]:
    """How auto fares against its targets in ``phase`` ("warm" or "cold"), with its allowance."""
    table = regret(cells, phase)
    summary = summarize(table, runners)
    auto = summary.get(AUTO, {"geomean": None, "worst": None, "worst_workload": None})
    target = TARGETS[phase]
    auto_regrets = {w: row.get(AUTO) for w, row in table.items()}
    misses = {w: v for w, v in auto_regrets.items() if v is not None and v > target["worst"]}
    peers = {r: s["geomean"] for r, s in summary.items() if not r.startswith("ck/") and s["geomean"] is not None}
    best_peer = min(peers, key=lambda r: peers[r]) if peers else None
    geomean = auto["geomean"]
    return {
        "phase": phase,
        "targets": target,
        "geomean": geomean,
        "geomean_ok": geomean is not None and geomean <= target["geomean"],
        "worst": auto["worst"],
        "worst_workload": auto["worst_workload"],
        "misses": misses,
        "best_peer": best_peer,
        "best_peer_geomean": peers.get(best_peer) if best_peer else None,
        "beats_every_peer": geomean is not None and all(geomean < g for g in peers.values()),
    }


def format_targets(verdict: Mapping[str, Any]) -> str:
    """One paragraph: auto's geomean and worst cell against the targets."""
    if verdict["geomean"] is None:
        return f"{verdict['phase']}: ck/auto was not measured"
    target = verdict["targets"]

    def mark(ok: bool) -> str:  # noqa: FBT001 - a local formatter
        return "ok" if ok else "MISSED"

    misses = ", ".join(f"{w} {v:.2f}" for w, v in verdict["misses"].items()) or "none"
    peer = verdict["best_peer"]
    peer_text = f"best peer {peer} {verdict['best_peer_geomean']:.2f}" if peer else "no peer measured"
    return (
        f"{verdict['phase']}: ck/auto geomean {verdict['geomean']:.2f} (target ≤ {target['geomean']}: "
        f"{mark(verdict['geomean_ok'])}); worst {verdict['worst']:.2f} on {verdict['worst_workload']} "
        f"(target ≤ {target['worst']} everywhere: {mark(not verdict['misses'])}; over it: {misses}); "
        f"beats every peer's geomean: {mark(verdict['beats_every_peer'])} ({peer_text})"
    )


def render_chart(
    phases: Mapping[str, Cells], runners: Sequence[str], path: Path, subtitle: str = ""
) -> None:  # pragma: no cover - drawing
    """Heat maps of regret, one per phase stacked: runners across, workloads down, log colour scale."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    names = list(phases)
    workloads = list(next(iter(phases.values())))
    rows = [*workloads, "geomean"]
    fig, axes = plt.subplots(
        len(names),
        1,
        figsize=(2.5 + 0.85 * len(runners), 0.9 + 0.36 * len(rows) * len(names)),
        squeeze=False,
        layout="constrained",
    )
    norm = LogNorm(vmin=1.0, vmax=10.0)
    cmap = mpl.colormaps["RdYlGn_r"].with_extremes(bad="#d9d9d9")
    image = None
    for ax, phase in zip(axes[:, 0], names, strict=True):
        cells = phases[phase]
        table = regret(cells, phase)
        summary = summarize(table, runners)
        grid = [[table[w][r] for r in runners] for w in workloads] + [[summary[r]["geomean"] for r in runners]]
        data = [[math.nan if v is None else min(max(v, 1.0), 10.0) for v in row] for row in grid]
        image = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                status = cells[workloads[i]][runners[j]]["status"] if i < len(workloads) else "ok"
                if status != "ok":
                    text = {"skipped": "skip", "error": "err"}.get(status, status)
                else:
                    text = "-" if value is None else (f"{value:.2f}" if value < 10 else f"{value:.0f}")
                weight = "bold" if runners[j] == AUTO or i == len(workloads) else "normal"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, fontweight=weight)
        ax.set_xticks(range(len(runners)), runners, rotation=30, ha="right", fontsize=9)
        ax.set_yticks(range(len(rows)), rows, fontsize=9)
        ax.axhline(len(workloads) - 0.5, color="black", linewidth=1.5)
        if AUTO in runners:
            k = runners.index(AUTO)
            ax.add_patch(Rectangle((k - 0.5, -0.5), 1, len(rows), fill=False, edgecolor="black", linewidth=2))
        target = TARGETS.get(phase)
        limits = f"; auto's targets: ≤ {target['worst']} each, geomean ≤ {target['geomean']}" if target else ""
        ax.set_title(f"{phase}: regret = time / best time on the workload{limits}", fontsize=10)
    if image is not None:
        bar = fig.colorbar(image, ax=axes[:, 0].tolist(), label="regret (log scale, clipped at 10)", shrink=0.6)
        ticks = [1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0]
        bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        bar.minorticks_off()
    if subtitle:
        fig.suptitle(subtitle, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
