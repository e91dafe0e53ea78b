"""The benchmark suite (benchmarks/) runs end to end on a tiny setting.

It checks the shape of what the benchmark produces (the tables, valid JSON, the chart),
never speed: the figures of a smoke run mean nothing. joblib is left out of the smoke
profile (its loky executor keeps worker processes), and matplotlib is optional.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture
def bench_run(monkeypatch: pytest.MonkeyPatch):
    """The benchmark's ``main``, importable however pytest was started."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    from benchmarks.run import main

    return main


def test_smoke_run_prints_tables_and_writes_json(bench_run, tmp_path: Path) -> None:
    out = io.StringIO()
    args = ["--smoke", "--out", str(tmp_path)]
    if not HAS_MATPLOTLIB:
        args.append("--no-chart")

    assert bench_run(args, out=out) == 0

    text = out.getvalue()
    assert "WARM regret" in text
    assert "COLD regret" in text
    for row in ("geomean", "worst", "square_x20000", "cpu1ms_x2000"):
        assert row in text
    assert "ck/auto's choice" in text

    results = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert results["meta"]["profile"] == "smoke"
    runners = list(results["runners"])
    assert "loop" in runners
    assert "ck/auto" in runners
    assert set(results["cells"]) == {"warm", "cold"}
    for phase, cells in results["cells"].items():
        assert set(cells) == {"square_x20000", "cpu1ms_x2000"}
        for workload, row in cells.items():
            assert list(row) == runners
            for runner, cell in row.items():
                where = f"{phase} {workload} {runner}: {cell}"
                assert cell["status"] in {"ok", "skipped"}, where
                if cell["status"] == "ok":
                    assert cell["seconds"] > 0, where
                    regret = results["regret"][phase][workload][runner]
                    assert regret >= 1.0, where
                    assert math.isfinite(regret), where
    # Every runner measured warm; cold only those the smoke profile names, the rest marked.
    assert all(c["status"] == "ok" for row in results["cells"]["warm"].values() for c in row.values())
    assert results["cells"]["cold"]["square_x20000"]["ck/thread"]["status"] == "skipped"
    assert set(results["targets"]) == {"warm", "cold"}
    assert results["auto_reasons"]["square_x20000"]["warm"]
    extras = results["extras"]
    assert [row["items"] for row in extras["scaling"]["rows"]] == [8, 16]
    assert extras["overhead"]["dispatch_us_per_item"]
    assert "peak_mib" in extras["memory"]["runners"]["ck/proc"]
    if HAS_MATPLOTLIB:
        assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")


def test_the_command_line_runs(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--smoke",
            "--workloads",
            "square_x20000",
            "--runners",
            "loop,ck/auto",
            "--no-cold",
            "--no-extras",
            "--no-chart",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "WARM regret" in completed.stdout
    assert "COLD regret" not in completed.stdout
    results = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert list(results["cells"]["warm"]["square_x20000"]) == ["loop", "ck/auto"]


def test_unknown_names_are_refused(bench_run, tmp_path: Path) -> None:
    assert bench_run(["--smoke", "--runners", "nope", "--out", str(tmp_path)], out=io.StringIO()) == 2
    assert not (tmp_path / "latest.json").exists()


def _mixed(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.mixed ARGS`` in a process of its own, as people run it."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.mixed", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_mixed_items_command_runs() -> None:
    # Its functions then come from a `-m` module, which worker processes must import.
    completed = _mixed("--calls", "1", "--workloads", "unevenwait_compute1_x40")
    assert completed.returncode == 0, completed.stderr
    line = completed.stdout.splitlines()[-1]
    assert line.startswith("unevenwait_compute1_x40"), completed.stdout
    assert "auto/best" in line


def test_the_mixed_items_command_refuses_unknown_workloads() -> None:
    completed = _mixed("--workloads", "nonesuch")
    assert completed.returncode == 2
    assert "unknown workloads: nonesuch" in completed.stderr


def test_stream_throughput_smoke_prints_a_ratio_per_row() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.stream_throughput", "--smoke", "--workloads", "square_x20000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=True,
    )
    rows = completed.stdout.splitlines()
    assert rows[0].split() == ["workload", "run_parallel", "iter_parallel", "ratio"]
    assert [row.split()[0] for row in rows[1:]] == ["square_x20000", "uneven:", "serial"]
    for row in rows[1:]:
        assert "x  (target <= " in row


def test_the_pipeline_benchmark_runs() -> None:
    """``benchmarks.pipeline`` on a tiny setting: every runner of the computing shape, and the trivial stages."""
    command = [sys.executable, "-m", "benchmarks.pipeline", "--items", "16", "--rounds", "1", "--shape", "parse-score"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=50, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for runner in ("pipeline", "nested", "queues", "fused-ppe"):
        assert f"  {runner}" in completed.stdout
