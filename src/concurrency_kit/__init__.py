"""concurrency_kit: map a function over items the fastest way, chosen by measuring.

>>> from concurrency_kit import run_parallel
>>> run_parallel(abs, [-1, 2, -3])
[1, 2, 3]
"""

from __future__ import annotations

import importlib

#: ``typing.TYPE_CHECKING``, without importing typing: importing the package costs
#: next to nothing until a name is used.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ._api.aio import AsyncResultStream as AsyncResultStream
    from ._api.aio import aiter_parallel as aiter_parallel
    from ._api.aio import arun_parallel as arun_parallel
    from ._api.auto_executor import AutoExecutor as AutoExecutor
    from ._api.calls import plan as plan
    from ._api.calls import run_parallel as run_parallel
    from ._api.calls import shutdown as shutdown
    from ._api.streaming import iter_parallel as iter_parallel
    from ._core.config import Config as Config
    from ._core.config import configure as configure
    from ._core.config import get_config as get_config
    from ._core.cpu import usable_cpus as usable_cpus
    from ._core.crash import WorkerCrashedError as WorkerCrashedError
    from ._core.errors import ConcurrencyKitError as ConcurrencyKitError
    from ._core.errors import MainGuardMissingError as MainGuardMissingError
    from ._core.errors import TaskTimeoutError as TaskTimeoutError
    from ._core.errors import UnpicklableTaskError as UnpicklableTaskError
    from ._core.errors import WorkerInitError as WorkerInitError
    from ._core.kinds import TaskKind as TaskKind
    from ._core.retrying import backoff as backoff
    from ._core.scope import use_executor as use_executor
    from ._decide.classify import Classifier as Classifier
    from ._decide.classify import cpu_bound as cpu_bound
    from ._decide.classify import gil_free as gil_free
    from ._decide.classify import io_bound as io_bound
    from ._decide.classify import register_classifier as register_classifier
    from ._decide.classify import unregister_classifier as unregister_classifier
    from ._decide.plan import Plan as Plan
    from ._decide.probe import Measurement as Measurement
    from ._pipeline.builder import Pipeline as Pipeline
    from ._pipeline.builder import pipeline as pipeline
    from ._pipeline.report import PipelineReport as PipelineReport
    from ._pipeline.report import StageReport as StageReport
    from ._run.stream import ResultStream as ResultStream

#: Where each public name lives. The package imports them when first asked for (PEP
#: 562), not with the package: a worker process, or the forkserver that starts them,
#: imports ``concurrency_kit._backends.worker`` alone, without attrs and the planner.
_EXPORTS = {
    "AsyncResultStream": "_api.aio",
    "AutoExecutor": "_api.auto_executor",
    "Classifier": "_decide.classify",
    "ConcurrencyKitError": "_core.errors",
    "Config": "_core.config",
    "MainGuardMissingError": "_core.errors",
    "Measurement": "_decide.probe",
    "Pipeline": "_pipeline.builder",
    "PipelineReport": "_pipeline.report",
    "Plan": "_decide.plan",
    "ResultStream": "_run.stream",
    "TaskKind": "_core.kinds",
    "StageReport": "_pipeline.report",
    "TaskTimeoutError": "_core.errors",
    "UnpicklableTaskError": "_core.errors",
    "WorkerCrashedError": "_core.crash",
    "WorkerInitError": "_core.errors",
    "aiter_parallel": "_api.aio",
    "arun_parallel": "_api.aio",
    "backoff": "_core.retrying",
    "configure": "_core.config",
    "cpu_bound": "_decide.classify",
    "get_config": "_core.config",
    "gil_free": "_decide.classify",
    "io_bound": "_decide.classify",
    "iter_parallel": "_api.streaming",
    "pipeline": "_pipeline.builder",
    "plan": "_api.calls",
    "register_classifier": "_decide.classify",
    "run_parallel": "_api.calls",
    "shutdown": "_api.calls",
    "unregister_classifier": "_decide.classify",
    "use_executor": "_core.scope",
    "usable_cpus": "_core.cpu",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = (
    "AsyncResultStream",
    "AutoExecutor",
    "Classifier",
    "ConcurrencyKitError",
    "Config",
    "MainGuardMissingError",
    "Measurement",
    "Pipeline",
    "PipelineReport",
    "Plan",
    "ResultStream",
    "StageReport",
    "TaskKind",
    "TaskTimeoutError",
    "UnpicklableTaskError",
    "WorkerCrashedError",
    "WorkerInitError",
    "aiter_parallel",
    "arun_parallel",
    "backoff",
    "configure",
    "cpu_bound",
    "get_config",
    "gil_free",
    "io_bound",
    "iter_parallel",
    "pipeline",
    "plan",
    "register_classifier",
    "run_parallel",
    "shutdown",
    "unregister_classifier",
    "usable_cpus",
    "use_executor",
)

__version__ = "0.1.0"
