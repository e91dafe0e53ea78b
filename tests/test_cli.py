"""The command line: ``python -m concurrency_kit explain`` (and the cost model's estimates it prints)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concurrency_kit import TaskKind
from concurrency_kit.__main__ import main
from concurrency_kit._api import explain as _explain
from concurrency_kit._api import planning as _planning
from concurrency_kit._api.explain import UsageError, load_function, parse_item
from concurrency_kit._core.costmodel import STARTING, starting_model, using_model
from concurrency_kit._decide.choose import alternatives, choose
from concurrency_kit._decide.plan import format_seconds
from concurrency_kit.tasks import SEED_NUMBERS, factorize
from measured import SERVER_UP, probed
from measured import given as given_figures


def explain(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What ``python -m concurrency_kit explain ARGV`` prints, run in this process."""
    assert main(["explain", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def option(out: str, label: str) -> str:
    """The estimates' line of the option labelled ``label`` (``"a loop"``, ``"threads"``, ``"processes"``)."""
    lines = [line for line in out.splitlines() if "≈" in line and label in line.split("≈")[0]]
    assert len(lines) == 1, (label, out)
    return lines[0]


#: What the probe reports of tiny items: every one run while measuring, 0.2 µs each.
TINY = probed(2e-7, 1.0, items=1000, gil_share=1.0)


@pytest.mark.usefixtures("pinned")
def test_io_items_go_to_threads_and_the_estimates_say_why(capsys: pytest.CaptureFixture[str]) -> None:
    with given_figures(probe=probed(0.010, 0.0, gil_share=0.0, exact=False)):  # two waiting, 10 ms into them
        out = explain(capsys, "concurrency_kit.tasks:slow_systemcall", "--count", "5")
    assert out.startswith("concurrency_kit.tasks:slow_systemcall over 5 item(s) (mode='auto')\n")
    assert "\n  mode       thread\n  kind       io\n  workers    3\n  chunksize  1\n" in out
    assert "planning ran the first 2 item(s)" in out
    assert "their results are discarded" in out
    assert "chosen" not in option(out, "a loop")
    threads = option(out, "threads")
    assert threads.strip().startswith("→ ")
    assert threads.endswith("← chosen")
    assert "the loop's" in threads


#: What the probe reports of the seed numbers' factorizations: 50 ms into the first.
COMPUTING = probed(0.050, 1.0, items=1, gil_share=1.0, exact=False)


@pytest.mark.usefixtures("pinned")
def test_cpu_items_go_to_processes_where_there_are_cpus(capsys: pytest.CaptureFixture[str]) -> None:
    with using_model(SERVER_UP), given_figures(probe=COMPUTING):  # a pool starts from a running forkserver
        out = explain(capsys, "concurrency_kit.tasks:factorize", *map(str, SEED_NUMBERS))
    assert "over 4 item(s)" in out
    assert "\n  mode       process\n  kind       cpu\n  workers    2\n" in out
    assert "threads: not weighed: items that hold the GIL take turns" in out
    assert option(out, "processes").endswith("← chosen")
    assert "chosen" not in option(out, "a loop")


@pytest.mark.usefixtures("pinned")
def test_cpu_items_run_in_a_loop_on_one_cpu(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for planner in (_planning, _explain):
        monkeypatch.setattr(planner, "planning_cpus", lambda: 1)
    with using_model(SERVER_UP), given_figures(probe=COMPUTING):
        out = explain(capsys, "concurrency_kit.tasks:factorize", *map(str, SEED_NUMBERS))
    assert "\n  mode       serial\n  kind       cpu\n" in out
    assert option(out, "a loop").endswith("← chosen")  # no pool is weighed for computing items
    assert "no pool weighed" in out
    assert "one usable CPU" in out


@pytest.mark.usefixtures("pinned")
def test_tiny_items_all_run_while_measuring_and_the_estimates_cover_them_all(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with given_figures(probe=TINY):
        out = explain(capsys, "concurrency_kit.tasks:square", "--count", "1000")
    assert "planning ran the first 1000 item(s)" in out
    assert "had none been measured first, for all 1000 items:" in out
    assert "\n  mode       serial\n" in out
    assert "a loop" in option(out, "a loop")


@pytest.mark.parametrize(
    "argv",
    [
        ["builtins:abs", "--", "-1", "-2", "3"],
        ["builtins:abs", "-1", "-2", "3"],  # negative numbers need no --
        ["--mode", "auto", "builtins:abs", "-1", "-2", "3"],
        ["builtins:abs", "-1", "-2", "3", "--mode", "auto"],  # options after the items too
    ],
)
def test_items_are_python_literals(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    out = explain(capsys, *argv)
    assert "builtins:abs over 3 item(s)" in out
    assert "raised" not in out  # abs("-1") would raise: the items are ints


def test_an_item_that_is_not_a_literal_is_the_plain_string(capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "builtins:len", "--", "hello", "-v", "a b")
    assert "builtins:len over 3 item(s)" in out
    assert "raised" not in out
    out = explain(capsys, "builtins:abs", "hello", "world")
    assert "item 0 raised while measuring (TypeError: bad operand type for abs(): 'str')" in out  # a string it was


@pytest.mark.parametrize(
    ("text", "item"),
    [
        ("3", 3),
        ("-1.5", -1.5),
        ("'a'", "a"),
        ("(1, 2)", (1, 2)),
        ("[None]", [None]),
        ("hello", "hello"),
        ("a b", "a b"),
    ],
)
def test_parse_item(text: str, item: object) -> None:
    assert parse_item(text) == item


def test_a_coroutine_function_is_async_and_nothing_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "asyncio:sleep", "0", "0")
    assert "\n  mode       async\n" in out
    assert "nothing was measured" in out
    assert "no alternatives to estimate" in out
    assert "planning ran" not in out
    assert "≈" not in out


def test_a_forced_mode_measures_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "concurrency_kit.tasks:square", "--mode", "thread", "--workers", "2", "1", "2", "3")
    assert "(mode='thread', workers=2)" in out
    assert "\n  mode       thread\n  kind       none (nothing declared it)\n  workers    2\n" in out
    assert "nothing was measured (mode='thread' was forced)" in out
    assert "≈" not in out


def test_dotted_names_reach_into_modules_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_function("concurrency_kit.tasks:factorize") is factorize
    assert load_function("pathlib:Path.home") == Path.home
    out = explain(capsys, "os.path:basename", "a/b", "c/d")
    assert "os.path:basename over 2 item(s)" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("concurrency_kit.tasks", "is not MODULE:FUNCTION"),
        (":factorize", "is not MODULE:FUNCTION"),
        ("concurrency_kit.tasks:", "is not MODULE:FUNCTION"),
        ("no_such_module_of_concurrency_kit:f", "cannot import 'no_such_module_of_concurrency_kit'"),
        ("concurrency_kit.tasks:no_such_task", "'concurrency_kit.tasks' has no attribute 'no_such_task'"),
        ("pathlib:Path.no_such", "'pathlib:Path' has no attribute 'no_such'"),
        ("concurrency_kit.tasks:SEED_NUMBERS", "is a list, not a function"),
    ],
)
def test_a_bad_target_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], target: str, message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["explain", target])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("python -m concurrency_kit explain: error: ")
    assert message in err
    assert "Traceback" not in err
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        load_function(target)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "thread", "asyncio:sleep", "0"], "TypeError: fn is a coroutine function"),
        (["builtins:abs", "1", "--count", "3"], "give ITEMS or --count, not both"),
        (["builtins:abs", "--workers", "0"], "must be 1 or more"),
        (["builtins:abs", "--count", "x"], "not a whole number"),
    ],
)
def test_arguments_that_cannot_be_planned_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["explain", *argv])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_the_current_directory_is_importable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "concurrency_kit_explain_target"
    (tmp_path / f"{name}.py").write_text("def double(x):\n    return 2 * x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(tmp_path))])
    try:
        out = explain(capsys, f"{name}:double", "1", "2")
    finally:
        sys.modules.pop(name, None)
    assert f"{name}:double over 2 item(s)" in out
    assert sys.path[0] == str(tmp_path)


#: ``python -m concurrency_kit ARGV``, run as a program, deciding on the figures of :data:`TINY`.
AS_A_PROGRAM_ON_TINY_FIGURES = """
import runpy, sys
from concurrency_kit._backends.given import Given, using_measurements
from concurrency_kit._decide.probe import Measurement
tiny = Measurement(items=1000, completed=1000, seconds=2e-4, item_wall=2e-7, item_cpu=2e-7, cpu_share=1.0,
                   gil_share=1.0, exact=True)
sys.argv = ["concurrency_kit", *sys.argv[1:]]
with using_measurements(Given(probe=tiny)):
    runpy.run_module("concurrency_kit", run_name="__main__", alter_sys=True)
"""


def test_explain_runs_as_a_program() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            AS_A_PROGRAM_ON_TINY_FIGURES,
            "explain",
            "concurrency_kit.tasks:square",
            "--count",
            "1000",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    out = completed.stdout
    assert out.startswith("concurrency_kit.tasks:square over 1000 item(s) (mode='auto')\n")
    assert "\n  mode       serial\n" in out
    assert "a loop" in out
    assert "≈" in out


def test_a_bad_target_exits_2_as_a_program() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "concurrency_kit", "explain", "concurrency_kit.tasks:no_such_task"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1
    assert "has no attribute 'no_such_task'" in completed.stderr


def test_demo_is_still_a_command() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--help"])
    assert exited.value.code == 0


# The estimates explain prints are the cost model's candidates: choose() picks from them, and quotes their estimates.

estimate_inputs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(list(TaskKind)),
        "item_seconds": st.floats(min_value=1e-8, max_value=100.0, allow_nan=False, allow_infinity=False),
        "count": st.integers(min_value=0, max_value=1_000_000),
        "cpus": st.integers(min_value=1, max_value=256),
        "io_cap": st.integers(min_value=1, max_value=1024),
        "unpicklable": st.none() | st.just("fn cannot be pickled"),
        "process_age": st.none() | st.floats(min_value=0.0, max_value=1e4),
        "bytes_per_item": st.integers(min_value=0, max_value=10**8),
        "server_started": st.booleans(),
        "workers": st.none() | st.integers(min_value=1, max_value=1024),
        "chunksize": st.none() | st.integers(min_value=1, max_value=1024),
        "item_cpu_share": st.floats(min_value=0.0, max_value=1.0),
        "processes_last": st.booleans(),
        "model": st.sampled_from(list(STARTING.values())),
    }
)


@given(estimate_inputs)
def test_alternatives_are_the_estimates_choose_weighs(drawn: dict[str, Any]) -> None:
    share = drawn.pop("item_cpu_share")
    args = {**drawn, "item_cpu": drawn["item_seconds"] * share}
    choice = choose(**args)
    weighed = alternatives(**args)
    loop = weighed[0]
    assert (loop.mode, loop.label) == ("serial", "a loop")
    assert loop.estimate == args["count"] * args["item_seconds"]
    # One candidate is chosen, sized as choose() sizes it; every other says why it lost.
    chosen = [candidate for candidate in weighed if candidate.lost is None]
    assert len(chosen) == 1
    assert (chosen[0].mode, chosen[0].workers, chosen[0].chunksize) == (choice.mode, choice.workers, choice.chunksize)
    pools = weighed[1:]
    assert [pool.mode for pool in pools] in ([], ["thread"], ["process"], ["thread", "process"])
    reason = choice.reason
    if not pools:  # decided without estimates
        assert choice.mode == "serial"
        assert "in a loop vs" not in reason
        return
    assert f"≈ {format_seconds(loop.estimate)} in a loop vs ≈ " in reason
    quoted = [pool.mode for pool in pools if f"≈ {format_seconds(pool.estimate)} on {pool.label}" in reason]
    assert quoted
    if choice.mode != "serial":
        assert choice.mode in quoted


def test_alternatives_of_io_items_that_compute_weigh_threads_and_processes() -> None:
    weighed = alternatives(
        kind=TaskKind.IO,
        item_seconds=0.02,
        item_cpu=0.012,
        count=64,
        cpus=16,
        io_cap=512,
        unpicklable=None,
        process_age=None,
        bytes_per_item=100,
        model=starting_model("forkserver"),
    )
    assert [candidate.mode for candidate in weighed] == ["serial", "thread", "process"]
    assert weighed[1].label == "64 threads taking turns for the GIL"
    assert weighed[2].estimate < weighed[1].estimate < weighed[0].estimate
