"""Free-threaded CPython without its GIL, simulated: computing items go to threads, and the reason says why.

No free-threaded interpreter is installed here: the tests make ``sys._is_gil_enabled()``
answer ``False`` (what it answers on a 3.13t build running without the GIL), which is
all concurrency_kit reads of it.
"""

from __future__ import annotations

import sys

import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._cpu import gil_enabled
from helpers import compute, declared_compute

#: Computing items: 20 ms of bytecode each, 8 of them (under a GIL, auto sends these to processes).
ITEMS = [20] * 8


@pytest.fixture
def without_gil(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)


def test_gil_enabled_reads_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gil_enabled() is getattr(sys, "_is_gil_enabled", lambda: True)()
    monkeypatch.delattr(sys, "_is_gil_enabled", raising=False)
    assert gil_enabled() is True  # before 3.13: always a GIL
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert gil_enabled() is False


@pytest.mark.usefixtures("without_gil")
def test_computing_items_go_to_threads_and_the_reason_says_why() -> None:
    if ck.usable_cpus() < 2:
        pytest.skip("one CPU: nothing runs side by side")
    plan = ck.plan(compute, ITEMS)
    assert plan.mode == "thread", plan.reason
    assert plan.kind is TaskKind.GIL_FREE
    assert "GIL is disabled (free-threaded CPython)" in plan.reason
    assert "GIL held" not in plan.reason or "GIL held n/a" in plan.reason  # no GIL reading
    assert plan.measurement is not None
    assert plan.measurement.gil_share is None
    assert plan.run() == ITEMS


@pytest.mark.usefixtures("without_gil")
def test_work_declared_cpu_bound_goes_to_threads() -> None:
    if ck.usable_cpus() < 2:
        pytest.skip("one CPU: nothing runs side by side")
    plan = ck.plan(declared_compute, ITEMS)
    assert plan.kind is TaskKind.GIL_FREE  # declared cpu: without a GIL, that is how it runs
    assert plan.mode == "thread", plan.reason


@pytest.mark.parametrize("fn", [compute, declared_compute])
def test_with_a_gil_the_same_items_go_to_processes(fn: object) -> None:
    if ck.usable_cpus() < 2 or not gil_enabled():
        pytest.skip("needs two CPUs and a GIL")
    plan = ck.plan(fn, ITEMS)  # type: ignore[arg-type]
    assert plan.mode == "process", plan.reason
    assert "free-threaded" not in plan.reason
    plan.run()
