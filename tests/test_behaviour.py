"""What every mode promises: order, any iterable, exceptions as raised, each item once."""

from __future__ import annotations

from pathlib import Path

import pytest

import concurrency_kit as ck
from helpers import (
    HelperError,
    calls_per_index,
    double,
    fail_on_13,
    generate_then_fail,
    reciprocal,
    record_cpu,
    record_gil_free,
    record_io,
    record_trivial,
)

CONTAINERS = {
    "list": list,
    "tuple": tuple,
    "range": lambda r: r,
    "generator": lambda r: (x for x in r),
}


@pytest.mark.parametrize("container", CONTAINERS)
def test_results_come_back_in_input_order(mode: str, container: str) -> None:
    items = CONTAINERS[container](range(57))
    assert ck.run_parallel(double, items, mode) == [2 * x for x in range(57)]


def test_results_in_order_with_explicit_sizing(mode: str) -> None:
    assert ck.run_parallel(double, range(50), mode, workers=2, chunksize=7) == [2 * x for x in range(50)]


def test_no_items_give_no_results(mode: str) -> None:
    assert ck.run_parallel(double, [], mode) == []
    assert ck.run_parallel(double, iter(()), mode) == []


def test_single_item(mode: str) -> None:
    assert ck.run_parallel(double, [21], mode) == [42]


def test_an_items_generator_that_raises_midway_surfaces_its_error(mode: str) -> None:
    with pytest.raises(LookupError, match="ran out badly"):
        ck.run_parallel(double, generate_then_fail(10), mode)


def test_fn_exception_reaches_the_caller_with_its_type_and_message(mode: str) -> None:
    # pytest matches against the message followed by the exception's notes, one a line.
    with pytest.raises(HelperError, match=r"^item 13 is unlucky\n") as caught:
        ck.run_parallel(fail_on_13, range(40), mode)
    assert str(caught.value) == "item 13 is unlucky"
    assert caught.value.__notes__ == ["concurrency_kit: raised by item 13: 13"]


def test_builtin_exception_reaches_the_caller_with_its_type(mode: str) -> None:
    with pytest.raises(ZeroDivisionError):
        ck.run_parallel(reciprocal, range(-3, 3), mode)


def test_a_failed_call_leaves_the_library_usable(mode: str) -> None:
    with pytest.raises(HelperError):
        ck.run_parallel(fail_on_13, range(20), mode)
    assert ck.run_parallel(double, range(20), mode) == [2 * x for x in range(20)]


# --- exactly once -----------------------------------------------------------------------

WORKLOADS = {
    # name: (fn, item count) — from far too small for a pool to clearly worth one
    "trivial": (record_trivial, 300),
    "io": (record_io, 20),
    "cpu": (record_cpu, 6),
    "gil_free": (record_gil_free, 12),
}


@pytest.mark.parametrize("workload", WORKLOADS)
def test_fn_is_called_exactly_once_per_item(mode: str, workload: str, calls_dir: str) -> None:
    fn, count = WORKLOADS[workload]
    items = [(calls_dir, i) for i in range(count)]
    assert ck.run_parallel(fn, items, mode) == list(range(count))
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(count), 1)


def test_a_second_run_of_a_plan_runs_every_item_again(mode: str, calls_dir: str) -> None:
    plan = ck.plan(record_io, [(calls_dir, i) for i in range(8)], mode)
    assert plan.run() == list(range(8))
    assert plan.run() == list(range(8))
    assert calls_per_index(Path(calls_dir)) == dict.fromkeys(range(8), 2)
