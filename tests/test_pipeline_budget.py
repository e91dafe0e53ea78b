"""A pipeline's worker budget: how the CPUs are split among computing stages, and when the split moves."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from concurrency_kit._core.share import Share
from concurrency_kit._pipeline.budget import GAIN, Balancer, allocate, rate

works = st.lists(st.floats(min_value=1e-4, max_value=1.0), min_size=1, max_size=4)


@given(work=works, cpus=st.integers(min_value=1, max_value=12), data=st.data())
def test_allocate_gives_each_one_at_most_its_plan_and_no_more_than_the_cpus(
    work: list[float], cpus: int, data: st.DataObject
) -> None:
    planned = data.draw(st.lists(st.integers(min_value=1, max_value=12), min_size=len(work), max_size=len(work)))
    shares = allocate(work, planned, cpus)
    assert all(share >= 1 for share in shares)
    assert all(share <= max(1, plan) for share, plan in zip(shares, planned, strict=True))
    assert sum(shares) <= cpus + len(work) - 1  # each rounded up: a cap, not a reservation


@given(work=works, cpus=st.integers(min_value=1, max_value=8))
def test_allocate_is_as_fast_as_the_best_split(work: list[float], cpus: int) -> None:
    planned = [cpus] * len(work)
    best = max(
        (rate(split, work) for split in itertools.product(range(1, cpus + 1), repeat=len(work)) if sum(split) <= cpus),
        default=0.0,
    )
    assert rate(allocate(work, planned, cpus), work) >= best * (1 - 1e-9)


def test_the_dearer_stage_gets_more() -> None:
    assert allocate([1.0, 3.0], [8, 8], 8) == [2, 6]
    assert allocate([1.0, 1.0], [8, 8], 8) == [4, 4]
    assert allocate([1.0, 3.0], [8, 2], 8) == [6, 2]  # never past its pool: the rest to the other
    assert allocate([5.0, 0.2], [2, 2], 2) == [2, 1]  # a stage that needs little does not halve the other


def _balancer_with(cpus: int = 8) -> tuple[Balancer, Share, Share]:
    balancer, light, heavy = Balancer(cpus), Share(), Share()
    balancer.add(0, light, 8)
    balancer.add(1, heavy, 8)
    return balancer, light, heavy


class _Simulated:
    """Two computing stages in a row, each item costing them ``costs`` worker-seconds: what the budget would see."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer, self.now, self.busy, self.items = balancer, 0.0, [0.0, 0.0], 0

    def run(self, looks: int, costs: tuple[float, float]) -> None:
        """``looks`` seconds: the pipeline runs at its slowest stage's rate; each stage is busy for its part."""
        for _ in range(looks):
            workers = [member.share.workers or member.planned for member in self.balancer.members]
            rate = min(workers[0] / costs[0], workers[1] / costs[1])  # items a second
            self.items += round(rate)
            self.busy = [self.busy[k] + rate * costs[k] / workers[k] for k in range(2)]
            self.now += 1.0
            self.balancer.look(self.now, self.busy, [self.items, self.items], self.items)


def test_the_balancer_moves_workers_to_the_dearer_stage() -> None:
    balancer, light, heavy = _balancer_with()
    pipeline = _Simulated(balancer)
    pipeline.run(1, (0.01, 0.01))
    assert (light.workers, heavy.workers) == (4, 4)  # the first look: a split at once
    pipeline.run(12, (0.01, 0.03))
    assert heavy.workers == 6
    assert light.workers in {2, 3}  # a quarter of the CPUs, rounded up as measured


def test_a_near_tie_never_moves_the_split() -> None:
    balancer, light, heavy = _balancer_with()
    _Simulated(balancer).run(20, (0.010, 0.011))
    assert (balancer.moves(0), balancer.moves(1)) == ([4], [5])  # the first look's split, then never again
    assert (light.workers, heavy.workers) == (4, 5)
    assert GAIN > 1


def test_a_single_computing_stage_has_no_budget() -> None:
    balancer, share = Balancer(8), Share()
    balancer.add(0, share, 8)
    assert not balancer.due(10.0)
    assert share.workers is None
