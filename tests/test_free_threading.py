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
from concurrency_kit._core.costmodel import using_model
from concurrency_kit._core.cpu import gil_enabled
from concurrency_kit._decide import classify as _classify
from helpers import compute, declared_compute
from measured import SERVER_UP, given, probed

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


#: Every CPU share reads computing, whatever share of a CPU a busy machine leaves the items.
COMPUTING_READ = _classify.Reading(compute_share=0.0)


@pytest.mark.usefixtures("without_gil", "pinned")
def test_computing_items_go_to_threads_and_the_reason_says_why() -> None:
    # The real probe runs them: without a GIL it reads none.
    with _classify.READING.using(COMPUTING_READ):
        plan = ck.plan(compute, ITEMS)
    assert (plan.mode, plan.kind, plan.workers, plan.chunksize) == ("thread", TaskKind.GIL_FREE, 2, 1), plan.reason
    assert "GIL is disabled (free-threaded CPython)" in plan.reason
    assert "GIL held" not in plan.reason or "GIL held n/a" in plan.reason  # no GIL reading
    assert plan.measurement is not None
    assert plan.measurement.gil_share is None
    assert plan.run() == ITEMS


#: What the probe reports of them, under a GIL: 20 ms into the first two, computing.
COMPUTING = probed(0.020, 1.0, gil_share=1.0, exact=False)


@pytest.mark.usefixtures("without_gil", "pinned")
def test_work_declared_cpu_bound_goes_to_threads() -> None:
    with given(probe=probed(0.020, 1.0)):
        plan = ck.plan(declared_compute, ITEMS)
    assert plan.kind is TaskKind.GIL_FREE  # declared cpu: without a GIL, that is how it runs
    assert (plan.mode, plan.workers, plan.chunksize) == ("thread", 2, 1), plan.reason


@pytest.mark.skipif(not gil_enabled(), reason="needs a GIL")
@pytest.mark.usefixtures("pinned")
@pytest.mark.parametrize("fn", [compute, declared_compute])
def test_with_a_gil_the_same_items_go_to_processes(fn: object) -> None:
    with using_model(SERVER_UP), given(probe=COMPUTING):
        plan = ck.plan(fn, ITEMS)  # type: ignore[arg-type]
    assert (plan.mode, plan.kind, plan.workers) == ("process", "cpu", 2), plan.reason
    assert "free-threaded" not in plan.reason
    plan.run()
