"""Scripts without ``if __name__ == "__main__":``: auto never turns a missing guard into a crash.

Each test writes a script, runs it in a fresh interpreter, and reads what it printed
and how many times its top level ran (each run leaves a line in a file: the script,
plus every worker process that imported it as the main module). Auto decides there on
given figures (:data:`GIVEN`), as the tests in this process do (tests/measured.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from concurrency_kit._backends.guard import _guards, main_guard_missing
from helpers import GIVEN

#: Without cloudpickle (the case the guard matters most for: functions of the main module go by reference).
NO_CLOUDPICKLE = 'import sys; sys.modules["cloudpickle"] = None\n'
#: 40 items of 20 ms of bytecode: processes win, wherever they may be used.
COMPUTE = """
def compute(ms):
    import time
    began = time.thread_time()
    while time.thread_time() - began < ms / 1000:
        pass
    return ms
"""


def _run(tmp_path: Path, *parts: str) -> tuple[subprocess.CompletedProcess[str], int]:
    runs = tmp_path / "runs.txt"
    script = tmp_path / "script.py"
    script.write_text(
        NO_CLOUDPICKLE
        + f"with open({str(runs)!r}, 'a') as _out:\n    _out.write('run\\n')\n"
        + "import concurrency_kit as ck\n"
        + GIVEN
        + "".join(textwrap.dedent(part) for part in parts)
    )
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=90, check=False, env=dict(os.environ)
    )
    return completed, len(runs.read_text().split())


def test_auto_runs_a_function_of_an_unguarded_main_without_processes_and_says_why(tmp_path: Path) -> None:
    completed, runs = _run(
        tmp_path,
        COMPUTE,
        """
        plan = ck.plan(compute, [20] * 40)
        print(plan.mode)
        print(plan.reason)
        print(ck.run_parallel(compute, [20] * 40) == [20] * 40)
        """,
    )
    assert completed.returncode == 0, completed.stderr
    mode, reason, same = completed.stdout.splitlines()
    assert mode == "serial"
    assert reason.startswith("measured 2 item(s) in 20.0 ms: "), reason  # the given figures
    assert 'if __name__ == "__main__":' in reason
    assert same == "True"
    assert "RuntimeError" not in completed.stderr
    assert runs == 1  # no worker ran the script


def test_forced_process_mode_says_exactly_what_to_add(tmp_path: Path) -> None:
    completed, runs = _run(
        tmp_path,
        """
        def inc(x):
            return x + 1

        try:
            ck.run_parallel(inc, range(4), "process")
        except ck.MainGuardMissingError as exc:
            print(type(exc).__mro__[1].__name__)
            print(exc)
        """,
    )
    assert completed.returncode == 0, completed.stderr
    base, message = completed.stdout.splitlines()
    assert base == "UnpicklableTaskError"
    assert 'Put the call under `if __name__ == "__main__":`' in message
    assert runs == 1


def test_a_function_from_a_module_runs_in_processes_that_do_not_import_the_unguarded_main(tmp_path: Path) -> None:
    completed, runs = _run(
        tmp_path,
        """
        from concurrency_kit import tasks
        numbers = tasks.SEED_NUMBERS * 2
        print(ck.run_parallel(tasks.factorize, numbers, "process") == [tasks.factorize(n) for n in numbers])
        print(ck.plan(tasks.factorize, tasks.SEED_NUMBERS * 2).mode)
        """,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["True", "process"]
    assert runs == 1


def test_with_spawn_workers_every_task_needs_the_guard(tmp_path: Path) -> None:
    completed, runs = _run(
        tmp_path,
        """
        from concurrency_kit import tasks
        ck.configure(start_method="spawn")
        plan = ck.plan(tasks.factorize, tasks.SEED_NUMBERS * 2)
        print(plan.mode, "guard" if '__name__ == "__main__"' in plan.reason else plan.reason)
        """,
    )
    assert completed.returncode == 0, completed.stderr
    mode, said = completed.stdout.split()
    assert mode == "serial"
    assert said == "guard"
    assert runs == 1


def test_a_guarded_main_still_sends_its_own_functions_to_processes(tmp_path: Path) -> None:
    completed, runs = _run(
        tmp_path,
        COMPUTE,
        """
        def main():
            plan = ck.plan(compute, [20] * 40)
            print(plan.mode, plan.run() == [20] * 40)

        if __name__ == "__main__":
            main()
        """,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["process", "True"]
    assert runs > 1  # the workers imported the main module, and its guard kept them out of main()


def test_the_guard_is_found_either_way_round(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        'x = 1\nif "__main__" == __name__:\n    y = 2\n    z = 3\nif __name__ != "__main__":\n    w = 4\n'
    )
    assert _guards(str(source), 0) == ((3, 4),)


def test_a_call_outside_a_script_is_not_unguarded() -> None:
    assert main_guard_missing() is False  # pytest's main module is not running this test at its top level
