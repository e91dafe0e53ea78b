"""Item 36: use subprocess to manage child processes.

A child process runs on its own, in parallel with its parent and with other children;
the parent only waits for it. Three ways to run ten children that each sleep 0.1 s and
print a line:

- ``subprocess.run`` one after another: each waits for the one before, about 1 s;
- ``subprocess.Popen`` for all of them first, then ``communicate`` with each: they all
  run at once, about 0.1 s plus their start-up;
- ``run_parallel`` over a function that calls ``subprocess.run``: auto measures that the
  calls mostly wait (on the child, not on the GIL) and picks a thread per child, with
  the same effect as ``Popen`` without the bookkeeping.

    python examples/item36_subprocess.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from concurrency_kit import plan
from concurrency_kit.tasks import run_child

CHILDREN = 10
#: The child: sleep, then say who it is. ``sys.executable`` works on every platform.
CHILD_CODE = "import sys, time; time.sleep(0.1); print(f'child {sys.argv[1]} done')"


def run_sleeper(index: int) -> str:
    """Run one child to its end and return what it printed (a blocking wait, as in a loop)."""
    completed = subprocess.run(
        [sys.executable, "-c", CHILD_CODE, str(index)], capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


def one_after_another() -> list[str]:
    return [run_sleeper(i) for i in range(CHILDREN)]


def all_at_once() -> list[str]:
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD_CODE, str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(CHILDREN)
    ]  # every child is running now; the parent goes on
    outputs = []
    for child in children:
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0
        outputs.append(out.strip())
    return outputs


def timed(title: str, run: Callable[[], list[str]]) -> list[str]:
    began = time.perf_counter()
    results = run()
    print(f"{title}: {len(results)} children in {time.perf_counter() - began:.2f} s")
    return results


def main() -> None:
    expected = [f"child {i} done" for i in range(CHILDREN)]
    print(f"first child says: {run_sleeper(0)!r}")
    assert timed("subprocess.run, one after another", one_after_another) == expected
    assert timed("subprocess.Popen, all started first", all_at_once) == expected

    began = time.perf_counter()
    chosen = plan(run_sleeper, range(CHILDREN))  # what run_parallel(run_sleeper, ...) does, and why
    assert chosen.run() == expected
    print(f"run_parallel, auto: {CHILDREN} children in {time.perf_counter() - began:.2f} s, mode {chosen.mode!r}")
    print(f"    {chosen.reason}")

    # The library's own reference task does the same: a child that echoes its argument.
    echo = plan(run_child, [f"hello {i}" for i in range(CHILDREN)])
    assert echo.run() == [f"hello {i}" for i in range(CHILDREN)]
    print(f"concurrency_kit.tasks.run_child: mode {echo.mode!r}")
    print(f"    {echo.reason}")
    print(
        "You should see: about 1 s one after another, and a small fraction of that with Popen and with "
        "run_parallel, whose auto mode chose 'thread' because waiting on a child leaves the GIL free."
    )


if __name__ == "__main__":  # worker processes import this file
    main()
