"""``python -m benchmarks.run``: concurrency_kit against a loop, concurrent.futures and joblib.

Every runner maps every workload twice over:

- **warm**: in this process, one warm-up call, then the median of several calls; each
  runner keeps its executor (a persistent pool; loky's reusable executor; concurrency_kit's
  warm pools). Runners take turns call by call, so noise spreads evenly.
- **cold**: the first call in a fresh interpreter (``python -m benchmarks._child``),
  executor start-up and concurrency_kit's probe included, imports and items not.

It prints regret tables (time over the best time any runner reached on the workload),
auto's figures against its targets, and separate scaling, overhead and memory figures;
it writes ``<out>/latest.json`` and ``<out>/latest.png`` (``--publish`` also writes
``benchmarks/results.json`` and ``docs/benchmark-regret.png``).
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import hashlib
import importlib.util
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO, final

import attrs

import concurrency_kit as ck

from . import report
from .measure import REPO_ROOT, run_child, timed_map
from .runners import RUNNERS, SMOKE_RUNNERS, KitAuto, Loop, Runner, get_runner, joblib_available, shutdown_peers
from .workloads import SMOKE_WORKLOADS, WORKLOADS, Profile, Workload, get_workload

__all__ = ["Settings", "main"]

BENCH_DIR = Path(__file__).resolve().parent
#: The published chart, where the docs show it.
CHART_PATH = BENCH_DIR.parent / "docs" / "benchmark-regret.png"
DEFAULT_OUT = BENCH_DIR / "results"
SCALING_WORKLOAD = "cpu1ms_x2000"
OVERHEAD_WORKLOAD = "square_x20000"
MEMORY_WORKLOAD = "bytes1mb_x200"
#: Set in a run on a pinned copy of concurrency_kit: the directory it was copied from.
PIN_ENV = "CK_BENCH_PINNED_FROM"
#: ... and the package directory on disk the copy was taken from (or archived from).
PIN_PATH_ENV = "CK_BENCH_PINNED_PATH"

Cell = dict[str, Any]


@final
@attrs.frozen
class Settings:
    """How much measuring a profile does."""

    profile: Profile
    #: Warm: at most this many timed calls per cell after the warm-up ...
    warm_repeats: int
    #: ... and fewer when the warm-up call shows they would take longer than this.
    warm_budget: float
    #: Cold: at most this many fresh interpreters per cell ...
    cold_repeats: int
    #: ... and fewer once the cell has used this many seconds.
    cold_budget: float
    #: Item counts for the scaling figure.
    scaling_sizes: tuple[int, ...]
    #: Repeats of the overhead figures (loop vs auto; thread dispatch).
    overhead_repeats: int
    dispatch_repeats: int
    #: Runners measured cold (None: every runner) and for memory.
    cold_runners: tuple[str, ...] | None = None
    memory_runners: tuple[str, ...] = ("loop", "ck/proc", "ck/auto")


PROFILES: dict[str, Settings] = {
    "full": Settings("full", 11, 5.0, 5, 5.0, (2000, 8000, 32000), 51, 15),
    "quick": Settings("quick", 2, 1.0, 1, 0.0, (2000, 8000), 21, 5),
    "smoke": Settings("smoke", 1, 0.0, 1, 0.0, (8, 16), 3, 1, ("loop", "ck/auto"), ("ck/proc",)),
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ok(samples: list[float], **extra: Any) -> Cell:
    return {"status": "ok", "seconds": statistics.median(samples), "samples": samples, **extra}


def _not_run(status: str, note: str) -> Cell:
    return {"status": status, "seconds": None, "samples": [], "note": note}


def _error_note(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _open_runners(names: Sequence[str], count: int) -> tuple[dict[str, Runner], dict[str, Cell]]:
    """The runners to run over ``count`` items, and cells for those that skip it."""
    active: dict[str, Runner] = {}
    skipped: dict[str, Cell] = {}
    for name in names:
        runner = get_runner(name)()
        skip = runner.skip_reason(count)
        if skip is None:
            active[name] = runner
        else:
            skipped[name] = _not_run("skipped", skip)
    return active, skipped


def measure_warm(workload: Workload, size: int, runner_names: Sequence[str], settings: Settings) -> dict[str, Cell]:
    """Warm cells of one workload: every runner open at once, taking turns call by call."""
    items = workload.items(size)
    active, cells = _open_runners(runner_names, len(items))
    samples: dict[str, list[float]] = {name: [] for name in active}
    allowed: dict[str, int] = {}
    digests: dict[str, str] = {}
    try:
        for name, runner in active.items():
            try:
                runner.open(len(items))
                warm_up, digests[name] = timed_map(runner, workload.fn, items)
            except Exception as exc:  # noqa: BLE001 - a runner that fails is reported in its cell
                cells[name] = _not_run("error", _error_note(exc))
                continue
            by_budget = int(settings.warm_budget / warm_up) if warm_up > 0 else settings.warm_repeats
            allowed[name] = max(1, min(settings.warm_repeats, by_budget))
        # A call runs measurably slower right after some runners (caches, the other
        # core's state): a fixed order would hand one runner the same predecessor every
        # turn. The order is shuffled each turn, reproducibly (seeded by the workload).
        order = random.Random(workload.name)
        for turn in range(max(allowed.values(), default=0)):
            turn_order = [n for n, allow in allowed.items() if turn < allow and n not in cells]
            order.shuffle(turn_order)
            for name in turn_order:
                try:
                    samples[name].append(timed_map(active[name], workload.fn, items)[0])
                except Exception as exc:  # noqa: BLE001 - reported in its cell
                    cells[name] = _not_run("error", _error_note(exc))
    finally:
        for runner in active.values():
            runner.close()
    for name, runner in active.items():
        if name not in cells:
            cells[name] = _ok(samples[name], digest=digests[name], reason=runner.reason)
    return {name: cells[name] for name in runner_names}


def measure_cold(
    workloads: Sequence[tuple[Workload, int]], runner_names: Sequence[str], settings: Settings
) -> dict[str, dict[str, Cell]]:
    """Cold cells: each the first call in a fresh interpreter, repeated while the budget lasts."""
    samples: dict[str, dict[str, list[float]]] = {w.name: {r: [] for r in runner_names} for w, _ in workloads}
    answers: dict[str, dict[str, dict[str, Any]]] = {w.name: {} for w, _ in workloads}
    cells: dict[str, dict[str, Cell]] = {w.name: {} for w, _ in workloads}
    for workload, size in workloads:
        for name in runner_names:
            skip = get_runner(name)().skip_reason(size)
            if skip is not None:
                cells[workload.name][name] = _not_run("skipped", skip)
    for turn in range(settings.cold_repeats):
        for workload, size in workloads:
            for name in runner_names:
                taken = samples[workload.name][name]
                if name in cells[workload.name] or (turn > 0 and sum(taken) + taken[0] > settings.cold_budget):
                    continue
                _log(f"cold {turn + 1}/{settings.cold_repeats}: {workload.name} {name}")
                try:
                    answer = run_child("cold", name, workload.name, str(size))
                except RuntimeError as exc:
                    cells[workload.name][name] = _not_run("error", _error_note(exc))
                    continue
                taken.append(float(answer["seconds"]))
                answers[workload.name][name] = answer
    for workload, _ in workloads:
        for name in runner_names:
            if name not in cells[workload.name]:
                answer = answers[workload.name][name]
                cells[workload.name][name] = _ok(
                    samples[workload.name][name], digest=answer["digest"], reason=answer["reason"]
                )
        cells[workload.name] = {name: cells[workload.name][name] for name in runner_names}
    return cells


def check_results(phases: dict[str, dict[str, dict[str, Cell]]]) -> None:
    """Mark as errors the cells whose results differ from the loop's (or the majority's)."""
    workloads = next(iter(phases.values())).keys()
    for workload in workloads:
        digests = [c["digest"] for cells in phases.values() for c in cells[workload].values() if c.get("digest")]
        if not digests:
            continue
        loop = [cells[workload]["loop"].get("digest") for cells in phases.values() if "loop" in cells[workload]]
        reference = next((d for d in loop if d), max(set(digests), key=digests.count))
        for cells in phases.values():
            for name, cell in cells[workload].items():
                if cell.get("digest") not in (None, reference):
                    cells[workload][name] = _not_run("error", f"results differ from the loop's ({cell['digest']})")


def _another_fits(times: Sequence[float], budget: float) -> bool:
    """Whether one more call, as long as the first of ``times``, stays within ``budget``."""
    return sum(times) + times[0] <= budget


def _timed_repeats(call: Callable[[], object], repeats: int, budget: float) -> list[float]:
    """Time ``call`` once, then again while ``repeats`` and ``budget`` allow."""
    times: list[float] = []
    while True:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if len(times) >= repeats or not _another_fits(times, budget):
            return times


#: Timed calls per size of the scaling figure, at most (fewer where the budget says).
SCALING_REPEATS = 3


def measure_scaling(settings: Settings) -> dict[str, Any]:
    """Auto's time per item, warm, for the 1 ms CPU workload at growing item counts.

    The sizes take turns, call by call, as the warm cells' runners do: a slow spell of
    the machine then spreads over every size instead of bending the line.
    """
    workload = get_workload(SCALING_WORKLOAD)
    auto, loop = KitAuto(), Loop()
    first = workload.items(settings.scaling_sizes[0])
    auto.map(workload.fn, first)  # warm-up
    loop_times = _timed_repeats(lambda: loop.map(workload.fn, first), 2, 2 * settings.warm_budget)
    inputs = {size: workload.items(size) for size in settings.scaling_sizes}
    samples: dict[int, list[float]] = {size: [] for size in settings.scaling_sizes}
    reasons: dict[int, str | None] = {}
    budget = 4 * settings.warm_budget
    for turn in range(SCALING_REPEATS):
        for size, items in inputs.items():
            taken = samples[size]
            if turn and not _another_fits(taken, budget):
                continue
            _log(f"scaling: ck/auto over {size} items")
            start = time.perf_counter()
            auto.map(workload.fn, items)
            taken.append(time.perf_counter() - start)
            reasons[size] = auto.reason
    rows = []
    for size, times in samples.items():
        median = statistics.median(times)
        rows.append(
            {
                "items": size,
                "seconds": median,
                "samples": times,
                "us_per_item": median / size * 1e6,
                "reason": reasons[size],
            }
        )
    loop_per_item = statistics.median(loop_times) / len(first) * 1e6
    return {
        "workload": workload.name,
        "runner": "ck/auto",
        "rows": rows,
        "loop_us_per_item": loop_per_item,
        "ideal_us_per_item": loop_per_item / ck.usable_cpus(),
    }


def measure_overhead(settings: Settings, size: int) -> dict[str, Any]:
    """Auto vs the loop on trivial items; thread-mode dispatch vs ThreadPoolExecutor.map."""
    workload = get_workload(OVERHEAD_WORKLOAD)
    items = workload.items(size)
    fn = workload.fn
    auto, loop = KitAuto(), Loop()
    auto.map(fn, items)
    loop_times, auto_times = [], []
    for _ in range(settings.overhead_repeats):
        loop_times.append(timed_map(loop, fn, items)[0])
        auto_times.append(timed_map(auto, fn, items)[0])
    diffs = [a - b for a, b in zip(auto_times, loop_times, strict=True)]
    cpus = ck.usable_cpus()
    dispatch: dict[str, float] = {}
    with ThreadPoolExecutor() as default_pool, ThreadPoolExecutor(max_workers=cpus) as small_pool:
        calls: dict[str, Callable[[], object]] = {
            "ck/thread (default workers)": lambda: ck.run_parallel(fn, items, "thread"),
            "tpe (default workers)": lambda: list(default_pool.map(fn, items)),
            f"ck/thread (workers={cpus})": lambda: ck.run_parallel(fn, items, "thread", workers=cpus),
            f"tpe (max_workers={cpus})": lambda: list(small_pool.map(fn, items)),
        }
        for call in calls.values():
            call()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(settings.dispatch_repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        dispatch = {name: statistics.median(t) / size * 1e6 for name, t in times.items()}
    return {
        "workload": workload.name,
        "items": size,
        "repeats": settings.overhead_repeats,
        "loop_ms": statistics.median(loop_times) * 1e3,
        "auto_ms": statistics.median(auto_times) * 1e3,
        "auto_minus_loop_ms": (statistics.median(auto_times) - statistics.median(loop_times)) * 1e3,
        "paired_difference_ms": statistics.median(diffs) * 1e3,
        "auto_reason": auto.reason,
        "dispatch_us_per_item": dispatch,
        "dispatch_repeats": settings.dispatch_repeats,
    }


def measure_memory(size: int, runner_names: Sequence[str]) -> dict[str, Any]:
    """Peak RSS of parent + children, first call in a fresh interpreter, on the 1 MB workload."""
    rows: dict[str, Any] = {}
    for name in runner_names:
        _log(f"memory: {name} over {size} items of {MEMORY_WORKLOAD}")
        try:
            answer = run_child("memory", name, MEMORY_WORKLOAD, str(size))
        except RuntimeError as exc:
            rows[name] = {"error": _error_note(exc)}
            continue
        mib = 1024 * 1024
        rows[name] = {
            "baseline_mib": answer["baseline_bytes"] / mib,
            "peak_mib": answer["peak_bytes"] / mib,
            "added_mib": (answer["peak_bytes"] - answer["baseline_bytes"]) / mib,
            "children": answer["children"],
            "seconds": answer["seconds"],
            "reason": answer["reason"],
        }
    return {"workload": MEMORY_WORKLOAD, "items": size, "runners": rows}


def format_extras(extras: dict[str, Any]) -> str:
    """The scaling, overhead and memory figures, in words."""
    lines: list[str] = []
    scaling = extras.get("scaling")
    if scaling:
        rows = "; ".join(
            f"{r['items']} items {r['us_per_item']:.0f} µs/item ({r['seconds']:.2f} s)" for r in scaling["rows"]
        )
        lines.append(
            f"scaling, ck/auto warm on {scaling['workload']}: {rows}; "
            f"loop {scaling['loop_us_per_item']:.0f} µs/item, ideal {scaling['ideal_us_per_item']:.0f} µs/item"
        )
    overhead = extras.get("overhead")
    if overhead:
        lines.append(
            f"overhead, {overhead['items']} trivial items (median of {overhead['repeats']}): loop "
            f"{overhead['loop_ms']:.2f} ms, ck/auto {overhead['auto_ms']:.2f} ms: "
            f"+{overhead['auto_minus_loop_ms']:.2f} ms (paired median +{overhead['paired_difference_ms']:.2f} ms)"
        )
        dispatch = ", ".join(f"{k} {v:.1f}" for k, v in overhead["dispatch_us_per_item"].items())
        lines.append(f"thread dispatch, µs per item (median of {overhead['dispatch_repeats']}): {dispatch}")
    memory = extras.get("memory")
    if memory:
        parts = []
        for name, row in memory["runners"].items():
            if "error" in row:
                parts.append(f"{name} error ({row['error']})")
            else:
                parts.append(
                    f"{name} peak {row['peak_mib']:.0f} MiB (+{row['added_mib']:.0f} over "
                    f"{row['baseline_mib']:.0f}, {row['children']} children, {row['seconds']:.2f} s)"
                )
        lines.append(
            f"memory, peak RSS parent+children, fresh interpreter, {memory['items']} × 1 MB items: " + "; ".join(parts)
        )
    return "\n".join(lines)


def _git(*args: str) -> str | None:
    try:
        completed = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def _src_fingerprint(package: Path | None = None) -> str:
    """A hash of concurrency_kit's source (by default, the copy this process imported)."""
    package = package or Path(ck.__file__).resolve().parent
    digest = hashlib.sha1(usedforsecurity=False)
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _meta(settings: Settings, argv: Sequence[str], runner_names: Sequence[str]) -> dict[str, Any]:
    versions: dict[str, str | None] = {"concurrency_kit": ck.__version__}
    if any(get_runner(r).needs_joblib for r in runner_names) and joblib_available():
        import joblib

        versions["joblib"] = joblib.__version__
    import multiprocessing

    status = _git("status", "--porcelain", "src")
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": list(argv),
        "profile": settings.profile,
        "settings": attrs.asdict(settings),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": ck.usable_cpus(),
        "start_method": multiprocessing.get_start_method(),
        "concurrency_kit_start_method": ck.get_config().start_method,
        "versions": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "src_modified": None if status is None else bool(status),
        "src_fingerprint": _src_fingerprint(),
        "pinned_copy_of": os.environ.get(PIN_ENV),
        "load_average_before": os.getloadavg(),
    }


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="fewer repeats, one cold run per cell (a few minutes)")
    group.add_argument("--smoke", action="store_true", help="tiny sizes, no joblib, one repeat (seconds; for tests)")
    parser.add_argument("--runners", help="comma-separated runner names (default: all; smoke: no joblib)")
    parser.add_argument("--workloads", help="comma-separated workload names (default: all)")
    parser.add_argument("--cold-runners", help="comma-separated runners to measure cold (default: the runners)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold measurements")
    parser.add_argument("--no-extras", action="store_true", help="skip the scaling, overhead and memory figures")
    parser.add_argument("--no-chart", action="store_true", help="do not render the PNG")
    parser.add_argument(
        "--no-pin", action="store_true", help="import concurrency_kit in place (default: a copy taken at the start)"
    )
    parser.add_argument("--pin-commit", metavar="REV", help="benchmark concurrency_kit as committed at REV (git)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where latest.json and latest.png go")
    parser.add_argument(
        "--publish", action="store_true", help="also write benchmarks/results.json and docs/benchmark-regret.png"
    )
    return parser.parse_args(argv)


def _names(text: str | None, default: Sequence[str], check: Callable[[str], object]) -> list[str]:
    if not text:
        return list(default)
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        check(name)
    return names


def _finish_meta(meta: dict[str, Any], started: float) -> None:
    meta["load_average_after"] = os.getloadavg()
    meta["git_commit_after"] = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "src")
    meta["src_modified_after"] = None if status is None else bool(status)
    meta["src_fingerprint_after"] = _src_fingerprint()
    # PIN_ENV describes the copy's origin (with --pin-commit, "PATH at git SHA"): the
    # directory to compare with is PIN_PATH_ENV.
    pinned = os.environ.get(PIN_PATH_ENV)
    meta["source_on_disk_fingerprint_after"] = (
        _src_fingerprint(Path(pinned)) if pinned else meta["src_fingerprint_after"]
    )
    meta["seconds"] = time.perf_counter() - started


def _report(results: dict[str, Any], runner_names: Sequence[str]) -> str:
    """The text report: tables, targets, auto's reasons, extras, and how the run went."""
    phases = results["cells"]
    texts = [
        report.format_table(
            f"{phase.upper()} regret (time / best time on the workload; ck/auto's first "
            f"{report.ALLOWANCE[phase] * 1e6:.0f} µs over it free)",
            cells,
            runner_names,
            phase,
        )
        for phase, cells in phases.items()
    ]
    body = "\n\n".join(texts)
    body += "\n\n" + "\n".join(report.format_targets(v) for v in results["targets"].values())
    if "ck/auto" in runner_names:
        body += "\n\nck/auto's choice (warm run's plan.reason):\n" + "\n".join(
            f"  {w}: {r.get('warm')}" for w, r in results["auto_reasons"].items()
        )
    if results["extras"]:
        body += "\n\n" + format_extras(results["extras"])
    meta = results["meta"]
    body += (
        f"\n\n{meta['profile']} run, {meta['seconds']:.0f} s; Python {meta['python']}, {meta['usable_cpus']} usable "
        f"CPUs, load average {meta['load_average_before'][0]:.2f} before, {meta['load_average_after'][0]:.2f} after"
    )
    if meta["pinned_copy_of"]:
        same = meta["source_on_disk_fingerprint_after"] == meta["src_fingerprint"]
        body += (
            f"\nconcurrency_kit {meta['src_fingerprint']}, pinned: every process ran a copy of "
            f"{meta['pinned_copy_of']} taken at the start (src/ now: {'the same' if same else 'different'})"
        )
    if meta["src_fingerprint"] != meta["src_fingerprint_after"]:
        body += (
            "\nWARNING: concurrency_kit's source changed during the run "
            f"({meta['src_fingerprint']} → {meta['src_fingerprint_after']}): the figures mix two versions"
        )
    return body


def _write(results: dict[str, Any], runner_names: Sequence[str], args: argparse.Namespace, stream: TextIO) -> None:
    """Write latest.json and latest.png (and the committed copies with --publish)."""
    meta = results["meta"]
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "latest.json"
    json_path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    outputs = [json_path]
    chart = not args.no_chart and importlib.util.find_spec("matplotlib") is not None
    if chart:
        png_path = args.out / "latest.png"
        subtitle = f"{meta['profile']} run {meta['date']}, Python {meta['python']}, {meta['usable_cpus']} CPUs"
        report.render_chart(results["cells"], runner_names, png_path, subtitle)
        outputs.append(png_path)
    elif not args.no_chart:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')", file=stream)
    if args.publish:
        shutil.copyfile(json_path, BENCH_DIR / "results.json")
        outputs.append(BENCH_DIR / "results.json")
        if chart:
            shutil.copyfile(args.out / "latest.png", CHART_PATH)
            outputs.append(CHART_PATH)
    print("wrote " + ", ".join(str(p) for p in outputs), file=stream)


def _run_pinned(argv: Sequence[str], commit: str | None) -> int:
    """Run this command again on a copy of concurrency_kit, so edits meanwhile cannot leak in.

    The copy is of the working tree, or of ``commit`` (``git archive``). It goes first on
    ``PYTHONPATH``, so the rerun, its fresh interpreters and every worker import it.
    """
    package = Path(ck.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp:
        if commit is None:
            shutil.copytree(package, Path(tmp) / package.name, ignore=shutil.ignore_patterns("__pycache__"))
            origin = str(package)
        else:
            relative = package.relative_to(REPO_ROOT).as_posix()
            archive = subprocess.run(
                ["git", "archive", "--format=tar", commit, relative], cwd=REPO_ROOT, capture_output=True, check=False
            )
            if archive.returncode != 0:
                print(f"error: git archive {commit}: {archive.stderr.decode().strip()}", file=sys.stderr)
                return 2
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(tmp, filter="data")
            shutil.move(Path(tmp) / relative, Path(tmp) / package.name)
            origin = f"{package} at git {_git('rev-parse', commit)}"
        # Byte-compiled, as an installed package is (and the standard library and joblib
        # here are): else every fresh interpreter, a cold pool's forkserver among them,
        # compiles the modules it imports from source.
        compileall.compile_dir(Path(tmp) / package.name, quiet=1)
        env = dict(os.environ)
        env[PIN_ENV] = origin
        env[PIN_PATH_ENV] = str(package)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tmp, str(REPO_ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "benchmarks.run", *argv]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark; print the report to ``out`` (stdout); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    stream = out or sys.stdout
    settings = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    default_runners = SMOKE_RUNNERS if args.smoke else tuple(r.name for r in RUNNERS)
    default_workloads = SMOKE_WORKLOADS if args.smoke else tuple(w.name for w in WORKLOADS)
    try:
        runner_names = _names(args.runners, default_runners, get_runner)
        workload_names = _names(args.workloads, default_workloads, get_workload)
        default_cold = [r for r in settings.cold_runners or runner_names if r in runner_names]
        cold_runners = _names(args.cold_runners, default_cold, get_runner)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    if settings.profile != "smoke" and not args.no_pin and PIN_ENV not in os.environ:
        return _run_pinned(argv, args.pin_commit)
    workloads = [(w, w.size(settings.profile)) for w in map(get_workload, workload_names)]
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": _meta(settings, argv, runner_names)}
    results["runners"] = {r: get_runner(r).description for r in runner_names}
    results["workloads"] = {w.name: {"items": size, "description": w.description} for w, size in workloads}
    phases: dict[str, dict[str, dict[str, Cell]]] = {"warm": {}}
    extras: dict[str, Any] = {}
    try:
        for workload, size in workloads:
            _log(f"warm: {workload.name} ({size} items)")
            phases["warm"][workload.name] = measure_warm(workload, size, runner_names, settings)
        if not args.no_extras:
            extras["scaling"] = measure_scaling(settings)
            extras["overhead"] = measure_overhead(settings, get_workload(OVERHEAD_WORKLOAD).size(settings.profile))
    finally:
        shutdown_peers(joblib_used=any(get_runner(r).needs_joblib for r in runner_names))
    if not args.no_cold:
        cold = measure_cold(workloads, cold_runners, settings)
        phases["cold"] = {
            w: {r: cold[w].get(r, _not_run("skipped", "not measured cold (--cold-runners)")) for r in runner_names}
            for w in cold
        }
    if not args.no_extras:
        extras["memory"] = measure_memory(get_workload(MEMORY_WORKLOAD).size(settings.profile), settings.memory_runners)
    check_results(phases)

    results["cells"] = phases
    results["regret"] = {phase: report.regret(cells, phase) for phase, cells in phases.items()}
    results["summary"] = {phase: report.summarize(results["regret"][phase], runner_names) for phase in phases}
    results["targets"] = {phase: report.check_targets(phase, cells, runner_names) for phase, cells in phases.items()}
    results["auto_reasons"] = {
        w: {phase: cells[w].get("ck/auto", {}).get("reason") for phase, cells in phases.items()} for w in phases["warm"]
    }
    results["extras"] = extras
    _finish_meta(results["meta"], started)
    print(_report(results, runner_names), file=stream, flush=True)
    _write(results, runner_names, args, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
