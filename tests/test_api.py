"""The public surface: names, types, argument checking, configuration."""

from __future__ import annotations

import gc
import inspect
import re
import subprocess
import sys
import weakref

import attrs
import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._core import cpu as _cpu
from helpers import double
from measured import given, probed


@pytest.mark.parametrize("name", ck.__all__)
def test_every_public_name_is_exported_and_documented(name: str) -> None:
    obj = getattr(ck, name)
    assert inspect.getdoc(obj), f"concurrency_kit.{name} has no docstring"


def test_importing_the_package_loads_a_name_only_when_it_is_used() -> None:
    # Worker processes (and the forkserver) import concurrency_kit._backends.worker, which brings
    # the package's __init__ along: it must not pull in attrs and the planner.
    script = (
        "import sys, concurrency_kit as ck\n"
        "print(sorted(m for m in ('attrs', 'typing', 'concurrency_kit._api.calls') if m in sys.modules))\n"
        "ck.run_parallel\n"
        "print(sorted(m for m in ('attrs', 'concurrency_kit._api.calls') if m in sys.modules))\n"
        "print(sorted(set(ck.__all__) - set(dir(ck))))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.splitlines() == ["[]", "['attrs', 'concurrency_kit._api.calls']", "[]"]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'run_paralel'"):
        ck.run_paralel  # type: ignore[attr-defined]  # noqa: B018
    namespace: dict[str, object] = {}
    exec("from concurrency_kit import *", namespace)
    assert set(ck.__all__) <= namespace.keys()


def test_task_kind_members_equal_their_strings() -> None:
    assert TaskKind.IO == "io"
    assert TaskKind.CPU == "cpu"
    assert TaskKind.GIL_FREE == "gil_free"
    assert TaskKind.ASYNC == "async"
    assert {k.value for k in TaskKind} == {"io", "cpu", "gil_free", "async"}


def test_unpicklable_task_error_is_a_library_error_and_a_type_error() -> None:
    assert issubclass(ck.UnpicklableTaskError, ck.ConcurrencyKitError)
    assert issubclass(ck.UnpicklableTaskError, TypeError)


def test_run_parallel_is_plan_then_run() -> None:
    items = list(range(10))
    assert ck.run_parallel(double, items) == ck.plan(double, items).run() == [2 * x for x in items]


def test_plan_is_frozen() -> None:
    plan = ck.plan(double, range(3), "serial")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        plan.mode = "thread"  # type: ignore[misc]


@pytest.mark.parametrize("mode", ["serial", "thread", "process"])
def test_forced_plan_has_the_mode_asked_for_and_no_kind(mode: str) -> None:
    plan = ck.plan(double, range(5), mode)
    assert plan.mode == mode
    assert plan.kind is None
    assert plan.workers >= 1
    assert plan.chunksize >= 1
    assert plan.measurement is None
    assert mode in plan.reason


def test_auto_plan_fields() -> None:
    plan = ck.plan(double, range(100))
    assert plan.mode in ("serial", "thread", "process")
    assert isinstance(plan.kind, TaskKind)
    assert plan.workers >= 1
    assert plan.chunksize >= 1
    assert isinstance(plan.measurement, ck.Measurement)
    assert re.search(r"\d", plan.reason), plan.reason
    assert plan.run() == [2 * x for x in range(100)]


def test_auto_plan_of_no_items_is_serial_without_a_kind() -> None:
    plan = ck.plan(double, [])
    assert (plan.mode, plan.kind) == ("serial", None)
    assert plan.run() == []


def test_a_plans_reason_is_written_once_and_shown_in_its_repr() -> None:
    plan = ck.plan(double, range(100))
    reason = plan.reason
    assert plan.reason is reason  # written when first read, then kept
    assert repr(reason) in repr(plan)
    assert repr(plan).startswith(f"Plan(mode={plan.mode!r}, kind={plan.kind!r}, workers={plan.workers!r}")
    written = ck.Plan(mode="serial", kind=None, workers=1, chunksize=1, reason=lambda: "by hand")
    by_hand = ck.Plan(mode="serial", kind=None, workers=1, chunksize=1, reason="by hand")
    assert written == by_hand  # plans compare by their reasons' text
    assert hash(written) == hash(by_hand)


class _Result:
    """A result a weak reference can watch."""


def _make_result(_: int) -> _Result:
    return _Result()


@pytest.mark.parametrize("mode", ["auto", "serial", "thread"])
def test_a_plan_keeps_no_result_alive_once_run(mode: str) -> None:
    plan = ck.plan(_make_result, range(50), mode)
    results = plan.run()
    watched = [weakref.ref(result) for result in results]
    del results
    gc.collect()
    assert all(ref() is None for ref in watched)
    assert len(plan.run()) == 50  # a second run() still runs every item


def test_a_plan_not_made_by_plan_has_nothing_to_run() -> None:
    bare = ck.Plan(mode="serial", kind=None, workers=1, chunksize=1, reason="by hand")
    with pytest.raises(RuntimeError):
        bare.run()


# --- bad arguments ----------------------------------------------------------------------


def test_unknown_mode_is_a_value_error_naming_the_valid_modes() -> None:
    with pytest.raises(ValueError, match="mode") as info:
        ck.run_parallel(double, [1], "fast")
    for valid in ("auto", "serial", "thread", "process"):
        assert valid in str(info.value)


def test_fn_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="callable"):
        ck.run_parallel(42, [1])  # type: ignore[arg-type]


def test_items_not_iterable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="iterable"):
        ck.run_parallel(double, 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["workers", "chunksize"])
@pytest.mark.parametrize("value", [0, -1])
def test_counts_below_one_are_value_errors(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        ck.run_parallel(double, [1], **{name: value})


@pytest.mark.parametrize("name", ["workers", "chunksize"])
@pytest.mark.parametrize("value", [2.5, "2", True])
def test_counts_that_are_not_ints_are_type_errors(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=name):
        ck.run_parallel(double, [1], **{name: value})


def test_classifier_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="classifier"):
        ck.run_parallel(double, [1], classifier="io")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["auto", "serial", "thread", "process"])
def test_classifier_returning_a_non_kind_is_a_value_error(mode: str) -> None:
    with pytest.raises(ValueError, match="bogus"):
        ck.run_parallel(double, [1, 2], mode, classifier=lambda _fn, _sample: "bogus")


# --- configuration ----------------------------------------------------------------------


def test_configure_changes_and_get_config_reports() -> None:
    config = ck.configure(max_io_workers=7)
    assert config == ck.get_config()
    assert ck.get_config().max_io_workers == 7


def test_configure_keeps_what_is_left_out() -> None:
    ck.configure(start_method="spawn")
    ck.configure(max_io_workers=5)
    assert ck.get_config().start_method == "spawn"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"start_method": "teleport"}, ValueError),
        ({"max_io_workers": 0}, ValueError),
        ({"max_io_workers": 2.5}, TypeError),
    ],
)
def test_configure_rejects_bad_settings(changes: dict[str, object], error: type[Exception]) -> None:
    before = ck.get_config()
    with pytest.raises(error):
        ck.configure(**changes)
    assert ck.get_config() == before


def test_default_start_method_is_forkserver_on_linux() -> None:
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("forkserver is the default on Linux")
    assert ck.get_config().resolved_start_method() == "forkserver"


def test_by_default_the_cost_model_sizes_io_threads_up_to_the_ceiling() -> None:
    from concurrency_kit._core.config import IO_THREADS_MAX

    assert ck.get_config().max_io_workers is None
    assert ck.get_config().io_thread_cap() == IO_THREADS_MAX
    ck.configure(max_io_workers=8)
    assert ck.get_config().io_thread_cap() == 8
    ck.configure(max_io_workers=None)  # back to the cost model's choice
    assert ck.get_config().io_thread_cap() == IO_THREADS_MAX


@pytest.mark.usefixtures("pinned")
def test_max_io_workers_caps_auto_threads() -> None:
    from helpers import wait_io

    ck.configure(max_io_workers=3)
    with given(probe=probed(0.010, 0.0, exact=False)):  # two waiting, 10 ms into them
        plan = ck.plan(wait_io, range(20), classifier=lambda _fn, _sample: "io")
    assert (plan.mode, plan.workers, plan.chunksize) == ("thread", 3, 1), plan.reason
    assert plan.run() == list(range(20))


def test_the_planner_rereads_the_cpus_it_may_use_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = iter([3, 5])
    clock = [1000.0]
    monkeypatch.setattr(_cpu, "usable_cpus", lambda: next(counts))
    monkeypatch.setattr(_cpu.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(_cpu, "_read", [])
    assert _cpu.planning_cpus() == 3
    clock[0] += _cpu._REREAD_SECONDS / 2
    assert _cpu.planning_cpus() == 3
    clock[0] += _cpu._REREAD_SECONDS
    assert _cpu.planning_cpus() == 5
