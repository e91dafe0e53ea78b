"""The processes the library starts live no longer than the program, and a forked child gets pools of its own.

Each test runs a real program in a child process (its own session, as a service under
a supervisor has), sends it a real signal or has it fork, and watches its processes
with psutil. Waits are for files the items write when they start (polled, with a
deadline), never sleeps that hope something happened; items never wait longer than
``helpers.WAIT_LIMIT``, so a process the library failed to stop still ends, after the
assertion has failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from concurrency_kit._backends import worker as _worker
from helpers import needs_two_cpus, started_items, still_running, wait_until_gone

TESTS_DIR = str(Path(__file__).parent)
#: The promise: within this many seconds of the parent's death, none of its processes is left.
GONE_WITHIN = 2.0
#: How long the program may take to exit after a signal it handles (it takes well under a second).
EXITS_WITHIN = 5.0

_CALL_SCRIPT = """
import contextlib, os, signal, sys
import concurrency_kit as ck
import helpers
from measured import given, probed

def main():
    directory, release, fn, mode, start_method, handling = sys.argv[1:7]
    if handling == "exit":  # a program that ends on SIGTERM, as services do
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    elif handling == "ignore-sigio":  # workers started by fork inherit this
        signal.signal(signal.SIGIO, signal.SIG_IGN)
    ck.configure(start_method=start_method)
    items = [(directory, i, release) for i in range(8)]
    # Auto decides on given figures (the probe's first item computing, 100 ms so far): processes.
    computing = probed(0.1, 1.0, items=1, gil_share=1.0, exact=False)
    with given(probe=computing) if mode == "auto" else contextlib.nullcontext():
        ck.run_parallel(getattr(helpers, fn), items, mode, workers=2, chunksize=1)
    print("the call finished without being stopped")

if __name__ == "__main__":
    main()
"""


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")]))}


def _start_call(
    tmp_path: Path, fn: str, mode: str, start_method: str, handling: str
) -> tuple[subprocess.Popen[str], str]:
    """Start the program running a call; return it once items run in workers, and the release path."""
    script = tmp_path / "program.py"
    script.write_text(_CALL_SCRIPT)
    directory = tmp_path / "started"
    directory.mkdir()
    release = str(tmp_path / "release")
    child = subprocess.Popen(
        [sys.executable, str(script), str(directory), release, fn, mode, start_method, handling],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
        start_new_session=True,
    )
    # Auto runs its first item in a probe thread of the program, and beside it (on two
    # CPUs) one worker: the others wait for a CPU.
    _wait_for_items_in_workers(str(directory), child, 1 if mode == "auto" else 2)
    return child, release


def _wait_for_items_in_workers(directory: str, child: subprocess.Popen[str], workers: int, limit: float = 30.0) -> None:
    """Poll until items run in ``workers`` worker processes (not in the program itself)."""
    deadline = time.monotonic() + limit
    while len({pid for _, pid in started_items(directory)} - {child.pid}) < workers:
        if child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"the program exited early ({child.returncode}): {err}")
        if time.monotonic() > deadline:
            pytest.fail(f"items started in fewer than {workers} workers within {limit} s: {started_items(directory)}")
        time.sleep(0.01)  # polling, not synchronisation


def _descendants(pid: int) -> set[int]:
    return {p.pid for p in psutil.Process(pid).children(recursive=True)}


def _finish(child: subprocess.Popen[str], release: str, pids: set[int]) -> None:
    """Clean up whatever a failed test left: release the items, kill what still runs."""
    Path(release).touch()
    if child.poll() is None:
        child.kill()
    child.communicate()
    for pid in still_running(pids):
        psutil.Process(pid).kill()


def _sigio_delivered() -> bool:
    return sys.platform == "linux" and _worker._sigio_delivered()


needs_sigio = pytest.mark.skipif(not _sigio_delivered(), reason="this kernel does not deliver SIGIO on a pipe's end")

#: (item function, mode, start method, signal handling, signal), by what the case shows.
DEATHS = {
    "waiting": ("wait_for_release", "process", "forkserver", "default", signal.SIGKILL),
    "computing": ("compute_until_released", "process", "forkserver", "default", signal.SIGTERM),
    "auto": ("compute_until_released", "auto", "forkserver", "default", signal.SIGKILL),
    "spawn": ("compute_until_released", "process", "spawn", "default", signal.SIGKILL),
    "fork": ("compute_until_released", "process", "fork", "default", signal.SIGTERM),
    # SIGIO ignored (workers started by fork inherit it): the watch thread ends them.
    "thread-watch": ("compute_until_released", "process", "fork", "ignore-sigio", signal.SIGKILL),
    # A C call that keeps the GIL: only the kernel's SIGIO can end the worker.
    "c-call": pytest.param(("hold_gil_in_c", "process", "forkserver", "default", signal.SIGKILL), marks=needs_sigio),
    "c-call-fork": pytest.param(("hold_gil_in_c", "process", "fork", "default", signal.SIGKILL), marks=needs_sigio),
}


@needs_two_cpus
@pytest.mark.slow
@pytest.mark.parametrize("case", list(DEATHS.values()), ids=list(DEATHS))
def test_no_process_outlives_a_parent_killed_in_the_middle_of_a_call(
    tmp_path: Path, case: tuple[str, str, str, str, int]
) -> None:
    fn, mode, start_method, handling, signum = case
    child, release = _start_call(tmp_path, fn, mode, start_method, handling)
    pids: set[int] = set()
    try:
        pids = _descendants(child.pid)  # workers, forkserver, resource tracker
        assert len(pids) >= 2
        os.kill(child.pid, signum)  # no clean-up runs: SIGKILL, or SIGTERM's default action
        child.wait(timeout=EXITS_WITHIN)
        left = wait_until_gone(pids, GONE_WITHIN)
        assert not left, f"still running {GONE_WITHIN} s after the parent died: {_commands(left)}"
    finally:
        _finish(child, release, pids)


@needs_two_cpus
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["process", "auto"])
def test_a_sigterm_handler_that_exits_ends_the_program_and_its_workers_promptly(tmp_path: Path, mode: str) -> None:
    # Items that would run for 30 s: the exit must not wait for them.
    child, release = _start_call(tmp_path, "compute_until_released", mode, "forkserver", "exit")
    pids: set[int] = set()
    try:
        pids = _descendants(child.pid)
        sent = time.monotonic()
        child.send_signal(signal.SIGTERM)
        try:
            _, err = child.communicate(timeout=EXITS_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the program did not exit within {EXITS_WITHIN} s of SIGTERM")
        took = time.monotonic() - sent
        assert child.returncode == 143, err
        assert "Traceback" not in err, err
        left = wait_until_gone(pids, GONE_WITHIN)
        assert not left, f"still running after the program exited: {_commands(left)}"
        assert took < EXITS_WITHIN
    finally:
        _finish(child, release, pids)


def _commands(pids: set[int]) -> list[str]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())[:120]}")
    return found


# --- a child made by fork() ---------------------------------------------------------------

_FORK_SCRIPT = """
import json, multiprocessing, os, sys, warnings
import concurrency_kit as ck
from concurrency_kit._backends.pool_state import shared
from helpers import double, worker_pid

# Forking a process that runs threads (the warm pools') warns from Python 3.12 on.
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)

def workers():
    return sorted(shared.processes.pids) if shared.processes else []

def calls():
    out = {mode: ck.run_parallel(double, range(20), mode) for mode in ("process", "thread", "serial", "auto")}
    out["workers"] = workers()
    return out

def report(write_end):
    try:
        out = calls()
    except BaseException as exc:
        out = {"error": repr(exc)}
    ck.shutdown()
    os.write(write_end, json.dumps(out).encode())
    os.close(write_end)

def main():
    how = sys.argv[1]
    ck.run_parallel(worker_pid, range(20), "process", workers=2, chunksize=1)
    ck.run_parallel(double, range(20), "thread")
    before = workers()
    read_end, write_end = os.pipe()
    if how == "os.fork":
        pid = os.fork()
        if pid == 0:
            report(write_end)
            os._exit(0)
        os.waitpid(pid, 0)
    elif how == "double-fork":  # how a daemon detaches
        pid = os.fork()
        if pid == 0:
            if os.fork() == 0:
                os.setsid()
                report(write_end)
            os._exit(0)
        os.waitpid(pid, 0)
    else:  # a multiprocessing worker started by fork, as pre-forking servers make
        process = multiprocessing.get_context("fork").Process(target=report, args=(write_end,))
        process.start()
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = json.loads(pipe.read())
    if how == "multiprocessing":
        process.join()
    parent = {"process": ck.run_parallel(double, range(20), "process"), "workers": workers(), "before": before}
    print(json.dumps({"child": child, "parent": parent}))

if __name__ == "__main__":
    main()
"""


@needs_two_cpus
@pytest.mark.slow
@pytest.mark.parametrize("how", ["os.fork", "double-fork", "multiprocessing"])
def test_a_forked_child_gets_pools_of_its_own_and_the_parents_keep_working(tmp_path: Path, how: str) -> None:
    script = tmp_path / "forking.py"
    script.write_text(_FORK_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), how], capture_output=True, text=True, env=_environment(), timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # no leaked semaphores, no noise
    report = json.loads(done.stdout)
    child, parent = report["child"], report["parent"]
    expected = [2 * x for x in range(20)]
    assert "error" not in child, child
    assert {mode: child[mode] for mode in ("process", "thread", "serial", "auto")} == dict.fromkeys(
        ("process", "thread", "serial", "auto"), expected
    )
    assert child["workers"], "the child's process-mode call ran in no pool of its own"
    assert not set(child["workers"]) & set(parent["before"]), "the child used the parent's workers"
    assert parent["process"] == expected
    assert parent["workers"] == parent["before"], "the parent's pool was replaced"


_FORKED_AND_KILLED_SCRIPT = """
import os, signal, sys, warnings
import concurrency_kit as ck
from helpers import double

warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)

if __name__ == "__main__":
    ck.run_parallel(double, range(20), "process", workers=2, chunksize=1)
    if os.fork() == 0:  # a child that outlives the parent, holding whatever it inherited
        signal.pause()  # until the test ends it
        os._exit(0)
    print(os.getpid(), flush=True)
    signal.pause()  # until killed
"""


@needs_two_cpus
@pytest.mark.slow
def test_a_forked_child_that_outlives_the_parent_does_not_keep_the_parents_workers_alive(tmp_path: Path) -> None:
    script = tmp_path / "forked.py"
    script.write_text(_FORKED_AND_KILLED_SCRIPT)
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environment(),
        start_new_session=True,
    )
    pids: set[int] = set()
    try:
        assert parent.stdout is not None
        assert int(parent.stdout.readline()) == parent.pid
        pids = _descendants(parent.pid)
        forked = {p.pid for p in psutil.Process(parent.pid).children() if "forked.py" in " ".join(p.cmdline())}
        assert len(forked) == 1
        # multiprocessing's resource tracker stays: a child made by fork shares it with
        # the parent by design (its own pools' semaphores are registered there).
        tracker = {pid for pid in pids if "resource_tracker" in " ".join(psutil.Process(pid).cmdline())}
        parent.kill()
        parent.wait(timeout=EXITS_WITHIN)
        left = wait_until_gone(pids - forked - tracker, GONE_WITHIN)
        assert not left, f"kept alive by the forked child: {_commands(left)}"
        assert still_running(forked) == forked
    finally:
        for pid in still_running(pids):  # the forked child first: it holds the output pipes open
            psutil.Process(pid).kill()
        if parent.poll() is None:
            parent.kill()
        parent.communicate()


def test_the_parent_watch_is_a_pipe_whose_write_end_no_worker_holds() -> None:
    # The pipe each pool's workers watch: made once, its read end handed to workers.
    from concurrency_kit._backends.pool_state import shared

    with shared.lock:
        reader = shared.watched_end()
        assert shared.watched_end() is reader
    assert shared.parent_watch is not None
    writer = shared.parent_watch[1]
    assert not os.get_inheritable(reader.fileno())
    assert not os.get_inheritable(writer.fileno())
