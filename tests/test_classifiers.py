"""Declaring a task's kind: decorators, classifiers, and which one wins."""

from __future__ import annotations

import functools
import pickle

import pytest

import concurrency_kit as ck
from concurrency_kit import TaskKind
from concurrency_kit._decide.classify import partly_waits
from helpers import declared_cpu, declared_gil_free, declared_io, double, wait_io


class Recorder:
    """A classifier that answers ``kind`` and records what it was shown."""

    def __init__(self, kind: TaskKind | str | None) -> None:
        self.kind = kind
        self.seen: list[tuple[object, tuple[object, ...]]] = []

    def __call__(self, fn: object, sample: tuple[object, ...]) -> TaskKind | str | None:
        self.seen.append((fn, sample))
        return self.kind


@pytest.mark.parametrize(
    ("name", "fn", "kind"),
    [
        ("io_bound", declared_io, "io"),
        ("cpu_bound", declared_cpu, "cpu"),
        ("gil_free", declared_gil_free, "gil_free"),
    ],
)
def test_decorators_declare_a_kind_and_return_the_function_itself(name: str, fn: object, kind: str) -> None:
    def local(x: int) -> int:
        return x

    assert getattr(ck, name)(local) is local
    assert pickle.loads(pickle.dumps(fn)) is fn
    plan = ck.plan(fn, range(3), "serial")
    assert plan.kind == kind
    assert f"the @{name} declaration" in plan.reason


def test_decorated_function_runs_in_worker_processes() -> None:
    assert ck.run_parallel(declared_cpu, range(6), "process") == list(range(6))


def test_decorator_declaration_is_named_in_the_reason() -> None:
    plan = ck.plan(declared_io, range(3))
    assert plan.kind == "io"
    assert "the @io_bound declaration" in plan.reason
    assert plan.run() == [0, 1, 2]


def test_declaration_is_seen_through_partial() -> None:
    partial = functools.partial(declared_gil_free)
    assert ck.plan(partial, range(3), "serial").kind == "gil_free"


def test_decorating_a_builtin_declares_it() -> None:
    ck.io_bound(abs)  # the isolation fixture forgets this declaration afterwards
    assert ck.plan(abs, [-1, 2], "serial").kind == "io"


def test_decorators_reject_non_callables() -> None:
    with pytest.raises(TypeError):
        ck.io_bound(42)  # type: ignore[type-var]


def test_call_classifier_sees_fn_and_up_to_four_leading_items_and_decides() -> None:
    classifier = Recorder("io")
    plan = ck.plan(wait_io, (x for x in range(10)), classifier=classifier)
    assert classifier.seen == [(wait_io, (0, 1, 2, 3))]
    assert plan.kind == TaskKind.IO
    assert "the call's classifier Recorder" in plan.reason
    assert plan.run() == list(range(10))


def test_call_classifier_sample_is_shorter_for_few_items() -> None:
    classifier = Recorder(None)
    ck.plan(double, [5, 6], "serial", classifier=classifier)
    assert classifier.seen == [(double, (5, 6))]


def test_classifier_may_answer_a_task_kind() -> None:
    assert ck.plan(double, range(3), "serial", classifier=Recorder(TaskKind.GIL_FREE)).kind == "gil_free"


def test_abstaining_classifier_leaves_it_to_the_measurement() -> None:
    plan = ck.plan(double, range(100), classifier=Recorder(None))
    assert "(from the measurement)" in plan.reason
    plan.run()


def test_forced_mode_reports_a_declared_kind() -> None:
    plan = ck.plan(double, range(3), "thread", classifier=Recorder("cpu"))
    assert (plan.mode, plan.kind) == ("thread", "cpu")
    assert "kind cpu from the call's classifier Recorder" in plan.reason
    assert plan.workers == min(3, ck.usable_cpus())


def test_call_classifier_beats_the_declaration() -> None:
    plan = ck.plan(declared_io, range(3), "serial", classifier=Recorder("cpu"))
    assert plan.kind == "cpu"
    assert "the call's classifier" in plan.reason


def test_declaration_beats_registered_classifiers() -> None:
    registered = ck.register_classifier(Recorder("cpu"))
    plan = ck.plan(declared_io, range(3), "serial")
    assert plan.kind == "io"
    assert registered.seen == []


def test_registered_classifiers_are_consulted_newest_first() -> None:
    older = ck.register_classifier(Recorder("cpu"))
    newer = ck.register_classifier(Recorder("gil_free"))
    plan = ck.plan(double, range(3), "serial")
    assert plan.kind == "gil_free"
    assert "registered classifier Recorder" in plan.reason
    assert older.seen == []
    assert len(newer.seen) == 1


def test_an_abstaining_registered_classifier_passes_to_the_next() -> None:
    older = ck.register_classifier(Recorder("io"))
    newer = ck.register_classifier(Recorder(None))
    assert ck.plan(double, range(3), "serial").kind == "io"
    assert len(newer.seen) == len(older.seen) == 1


def test_registering_again_moves_a_classifier_to_the_front() -> None:
    first = ck.register_classifier(Recorder("io"))
    ck.register_classifier(Recorder("cpu"))
    ck.register_classifier(first)
    assert ck.plan(double, range(3), "serial").kind == "io"


def test_register_classifier_works_as_a_decorator_and_unregister_removes_it() -> None:
    @ck.register_classifier
    def everything_is_io(fn: object, sample: tuple[object, ...]) -> str:
        return "io"

    assert callable(everything_is_io)
    assert ck.plan(double, range(3), "serial").kind == "io"
    ck.unregister_classifier(everything_is_io)
    assert ck.plan(double, range(3), "serial").kind is None


def test_unregistering_an_unknown_classifier_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a registered classifier"):
        ck.unregister_classifier(Recorder("io"))


def test_registering_a_non_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        ck.register_classifier("io")  # type: ignore[type-var]


def test_registered_classifier_returning_a_non_kind_is_a_value_error() -> None:
    ck.register_classifier(Recorder("bogus"))
    with pytest.raises(ValueError, match="bogus"):
        ck.run_parallel(double, range(3))


def test_classifier_protocol_matches_plain_functions() -> None:
    def classify(fn: object, sample: tuple[object, ...]) -> None:
        return None

    assert isinstance(classify, ck.Classifier)


@pytest.mark.parametrize(
    ("kind", "share", "gil", "verdict"),
    [
        (TaskKind.GIL_FREE, 0.5, 0.0, "may wait"),  # computing without the GIL would show about 1
        (TaskKind.GIL_FREE, 0.9, 0.0, "computes"),
        (TaskKind.CPU, 0.5, 1.0, "computes"),  # two threads taking turns for the GIL show 0.5
        (TaskKind.CPU, 0.5, 0.67, "may wait"),  # a busy machine's late wake-ups, say
        (TaskKind.CPU, 0.9, 0.67, "computes"),
        (TaskKind.IO, 0.1, None, "computes"),  # (or waits: nothing to turn to)
    ],
)
def test_a_computing_verdict_on_a_middling_cpu_share_may_yet_turn_to_io(
    kind: TaskKind, share: float, gil: float | None, verdict: str
) -> None:
    assert partly_waits(kind, share, gil) is (verdict == "may wait")
