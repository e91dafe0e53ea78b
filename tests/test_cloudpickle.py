"""cloudpickle installed: lambdas, closures and functions of __main__ go to worker processes by value."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import concurrency_kit as ck
from concurrency_kit._core.costmodel import using_model
from helpers import compute, extra_module
from measured import SERVER_UP, given, probed

extra_module("cloudpickle")

REPO_SRC = str(Path(__file__).resolve().parent.parent / "src")


def _make_closure(offset: int):
    def add_offset(x: int) -> int:
        return x + offset

    return add_offset


def test_forced_process_mode_runs_a_lambda_and_a_closure_in_workers() -> None:
    assert ck.run_parallel(lambda x: (x * 2, os.getpid()), range(6), "process")[0][1] != os.getpid()
    assert ck.run_parallel(_make_closure(10), range(6), "process") == [x + 10 for x in range(6)]
    assert list(ck.iter_parallel(lambda x: x * 3, iter(range(40)), "process", chunksize=4)) == [
        3 * x for x in range(40)
    ]


@pytest.mark.usefixtures("pinned")
def test_auto_sends_a_computing_lambda_to_processes_and_says_by_which_pickler() -> None:
    # 20 ms of bytecode an item, 8 items, on 2 CPUs, a pool starting from the running
    # forkserver: the probe decides 20 ms into the first two, and processes win.
    computing = probed(0.020, 1.0, gil_share=1.0, exact=False)
    with using_model(SERVER_UP), given(probe=computing):
        plan = ck.plan(lambda ms: compute(ms), [20] * 8)  # noqa: PLW0108 - a lambda is the point
    assert (plan.mode, plan.kind, plan.workers) == ("process", "cpu", 2), plan.reason
    assert "by value (cloudpickle)" in plan.reason
    assert plan.run() == [20] * 8


def test_a_function_of_the_main_module_goes_by_value_and_workers_do_not_import_it(tmp_path: Path) -> None:
    # Each time the script's top level runs, it leaves a line in a file: once for the
    # parent, and once more for every worker that imported the main module.
    runs = tmp_path / "runs.txt"
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            with open({str(runs)!r}, "a") as out:
                out.write(str(os.getpid()) + "\\n")

            import concurrency_kit as ck

            def triple(x):
                return (3 * x, os.getpid())

            if __name__ == "__main__":
                results = ck.run_parallel(triple, range(8), "process", workers=2)
                assert [r for r, _ in results] == [3 * x for x in range(8)]
                assert os.getpid() not in {{pid for _, pid in results}}
                print("ok")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": REPO_SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"
    assert len(runs.read_text().split()) == 1  # the parent only
