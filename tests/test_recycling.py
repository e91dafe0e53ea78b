"""``max_tasks_per_worker``: a worker process is replaced after it has run that many items."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import concurrency_kit as ck
from helpers import initializer_runs, load_model, pid_after_a_moment, use_model


def test_one_worker_of_two_items_each_runs_ten_items_in_five_processes() -> None:
    pids = ck.run_parallel(pid_after_a_moment, range(10), "process", workers=1, max_tasks_per_worker=2)
    assert sorted(Counter(pids).values()) == [2, 2, 2, 2, 2]


def test_every_worker_reaching_its_limit_at_once_never_deadlocks() -> None:
    # Four workers, 3 items each, chunks of up to 3: they retire together, again and again.
    pids = ck.run_parallel(pid_after_a_moment, range(48), "process", workers=4, max_tasks_per_worker=3)
    assert len(pids) == 48
    assert max(Counter(pids).values()) <= 3  # counted by item: never over


def test_a_stream_counts_items_too() -> None:
    pids = list(ck.iter_parallel(pid_after_a_moment, range(20), "process", workers=2, max_tasks_per_worker=4))
    assert max(Counter(pids).values()) <= 4


def test_each_replacement_runs_the_initializer_again(tmp_path_factory: pytest.TempPathFactory) -> None:
    runs_dir = str(tmp_path_factory.mktemp("runs"))
    results = ck.run_parallel(
        use_model,
        range(12),
        "process",
        workers=1,
        max_tasks_per_worker=3,
        initializer=load_model,
        initargs=(runs_dir, "fresh"),
    )
    assert {name for name, _, _ in results} == {"fresh"}
    assert len(initializer_runs(runs_dir)) == len({pid for _, _, pid in results}) == 4


@pytest.mark.parametrize("mode", ["thread", "serial"])
def test_it_has_no_effect_without_worker_processes(mode: str) -> None:
    assert ck.run_parallel(abs, [-1, -2, -3], mode, max_tasks_per_worker=1) == [1, 2, 3]


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_a_limit_that_is_not_a_positive_int_is_rejected(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_tasks_per_worker"):
        ck.run_parallel(abs, [1], max_tasks_per_worker=value)
