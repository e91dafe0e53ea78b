"""The cost model's machine figures (_costmodel): per start method, refined from observations, clamped."""

from __future__ import annotations

import math
import statistics
import time

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import concurrency_kit as ck
from concurrency_kit._backends import pools as _pools
from concurrency_kit._backends.prestart import prestart_process_pool
from concurrency_kit._core import costmodel as _costmodel
from concurrency_kit._core.costmodel import (
    FIGURES,
    KEPT,
    LEAST,
    MOST,
    STARTING,
    Figure,
    Observed,
    model_in_force,
    refined,
    starting_model,
    using_model,
)

METHODS = sorted(STARTING)
figures = st.sampled_from(FIGURES)
methods = st.sampled_from(METHODS)
#: Observations from a thousandth to a thousand times a figure's starting value.
scales = st.floats(min_value=1e-3, max_value=1e3)


def test_every_start_method_has_every_figure() -> None:
    for method, model in STARTING.items():
        assert model.start_method == method
        for figure, value in model.figures():
            assert value > 0, (method, figure)
            assert model.source(figure) == "starting value"


def test_the_pool_start_follows_the_start_method() -> None:
    forkserver, spawn, fork = STARTING["forkserver"], STARTING["spawn"], STARTING["fork"]
    # The forkserver's server starts once; its later pools fork from it.
    assert forkserver.restart < forkserver.cold_start
    assert forkserver.pool_start(server_started=True) == forkserver.restart
    assert forkserver.pool_start(server_started=False) == forkserver.cold_start
    # spawn starts a fresh interpreter a worker, every time; fork needs none.
    assert spawn.restart == spawn.cold_start >= forkserver.cold_start
    assert fork.restart == fork.cold_start <= forkserver.restart
    # What does not depend on how workers start is the same for every method.
    for figure in ("thread_start", "process_round_trip", "byte_cost", "process_item"):
        assert len({getattr(model, figure) for model in STARTING.values()}) == 1, figure


def test_the_model_in_force_is_the_configured_start_methods() -> None:
    for method in METHODS:
        ck.configure(start_method=method)
        assert model_in_force() == STARTING[method]


def test_an_unknown_start_method_gets_the_forkservers_figures() -> None:
    model = starting_model("threads-on-mars")
    assert model.start_method == "threads-on-mars"
    assert attrs.evolve(model, start_method="forkserver") == STARTING["forkserver"]


@given(methods, figures, st.lists(scales, min_size=1, max_size=3 * KEPT))
def test_a_refined_figure_is_the_median_of_its_last_observations_within_half_and_twice(
    method: str, figure: Figure, scales: list[float]
) -> None:
    start = STARTING[method]
    base: float = getattr(start, figure)
    observed = Observed()
    for scale in scales:
        observed.observe(figure, base * scale, start_method=method)
    model = observed.model(method)
    value: float = getattr(model, figure)
    kept = [base * scale for scale in scales[-KEPT:]]
    assert LEAST * base <= value <= MOST * base
    assert value == pytest.approx(min(MOST * base, max(LEAST * base, statistics.median(kept))))
    assert model.observations(figure) == len(kept)
    assert model.source(figure) == f"refined from {len(kept)} observation(s)"
    # The other figures keep their starting values.
    for other, other_value in model.figures():
        if other != figure:
            assert other_value == getattr(start, other)
            assert model.source(other) == "starting value"


@given(methods, figures, st.lists(st.sampled_from([0.0, -1.0, math.nan]), min_size=1, max_size=5))
def test_observations_that_are_not_durations_are_left_out(method: str, figure: Figure, bad: list[float]) -> None:
    observed = Observed()
    for seconds in bad:
        observed.observe(figure, seconds, start_method=method)
    assert observed.model(method) == STARTING[method]


@given(figures, scales)
def test_a_pool_start_refines_only_its_start_methods_figures(figure: Figure, scale: float) -> None:
    observed = Observed()
    observed.observe(figure, getattr(STARTING["spawn"], figure) * scale, start_method="spawn")
    by_method = figure in ("cold_start", "restart")
    assert (observed.model("forkserver") == STARTING["forkserver"]) is by_method
    assert observed.model("spawn").observations(figure) == 1
    observed.clear()
    assert observed.model("spawn") == STARTING["spawn"]


def test_refined_leaves_a_model_without_observations_as_it_is() -> None:
    start = STARTING["fork"]
    assert refined(start, {}) is start


@pytest.mark.parametrize("method", METHODS)
def test_pool_starts_refine_cold_start_and_restart_as_the_start_method_has_them(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    observed = Observed()
    monkeypatch.setattr(_costmodel, "OBSERVED", observed)  # a fresh record, not this session's
    start = STARTING[method]
    _costmodel.observe_pool_start(start.cold_start * 1.5, start_method=method, server_was_running=False)
    model = observed.model(method)
    assert model.cold_start == pytest.approx(start.cold_start * 1.5)
    if method == "forkserver":
        assert model.restart == start.restart  # a cold start says nothing of forking from the running server
        _costmodel.observe_pool_start(start.restart * 0.8, start_method=method, server_was_running=True)
        assert observed.model(method).restart == pytest.approx(start.restart * 0.8)
    else:  # without a server, every start is a cold one
        assert model.restart == model.cold_start


def nap(x: int) -> int:
    time.sleep(0.002)
    return x


def test_a_model_passed_in_is_the_one_the_decision_weighs() -> None:
    # Waits go to threads on the figures in force; were a thread's start (and a pool's)
    # to cost a second, the loop wins.
    assert ck.plan(nap, range(20)).mode == "thread"
    dear = attrs.evolve(model_in_force(), thread_start=1.0, cold_start=10.0, restart=10.0)
    with using_model(dear):
        assert model_in_force() is dear
        plan = ck.plan(nap, range(20))
    assert model_in_force() == STARTING[ck.get_config().resolved_start_method()]
    assert plan.mode == "serial", plan.reason
    assert "too little work to pay for a pool" in plan.reason
    assert plan.run() == list(range(20))


def test_a_pools_start_to_its_first_answer_refines_the_model() -> None:
    method = ck.get_config().resolved_start_method()
    server_running = _pools.forkserver_started()
    starting = prestart_process_pool(2)
    assert starting is not None
    starting.join(timeout=30)
    model = model_in_force()
    if method == "forkserver":
        assert model.observations("restart" if server_running else "cold_start") == 1, model
    else:
        assert model.observations("cold_start") == model.observations("restart") == 1, model
    # A pool already there, asked for again, is not a start.
    assert prestart_process_pool(2) is None
    assert model_in_force() == model
