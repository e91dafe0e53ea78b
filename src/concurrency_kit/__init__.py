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
    from ._api import iter_parallel as iter_parallel
    from ._api import plan as plan
    from ._api import run_parallel as run_parallel
    from ._api import shutdown as shutdown
    from ._async_api import AsyncResultStream as AsyncResultStream
    from ._async_api import aiter_parallel as aiter_parallel
    from ._async_api import arun_parallel as arun_parallel
    from ._auto_executor import AutoExecutor as AutoExecutor
    from ._classify import Classifier as Classifier
    from ._classify import TaskKind as TaskKind
    from ._classify import cpu_bound as cpu_bound
    from ._classify import gil_free as gil_free
    from ._classify import io_bound as io_bound
    from ._classify import register_classifier as register_classifier
    from ._classify import unregister_classifier as unregister_classifier
    from ._config import Config as Config
    from ._config import configure as configure
    from ._config import get_config as get_config
    from ._cpu import usable_cpus as usable_cpus
    from ._crash import WorkerCrashedError as WorkerCrashedError
    from ._errors import ConcurrencyKitError as ConcurrencyKitError
    from ._errors import MainGuardMissingError as MainGuardMissingError
    from ._errors import UnpicklableTaskError as UnpicklableTaskError
    from ._plan import Plan as Plan
    from ._probe import Measurement as Measurement
    from ._scope import use_executor as use_executor
    from ._stream import ResultStream as ResultStream

#: Where each public name lives. The package imports them when first asked for (PEP
#: 562), not with the package: a worker process, or the forkserver that starts them,
#: imports ``concurrency_kit._worker`` alone, without attrs and the planner.
_EXPORTS = {
    "AsyncResultStream": "_async_api",
    "AutoExecutor": "_auto_executor",
    "Classifier": "_classify",
    "ConcurrencyKitError": "_errors",
    "Config": "_config",
    "MainGuardMissingError": "_errors",
    "Measurement": "_probe",
    "Plan": "_plan",
    "ResultStream": "_stream",
    "TaskKind": "_classify",
    "UnpicklableTaskError": "_errors",
    "WorkerCrashedError": "_crash",
    "aiter_parallel": "_async_api",
    "arun_parallel": "_async_api",
    "configure": "_config",
    "cpu_bound": "_classify",
    "get_config": "_config",
    "gil_free": "_classify",
    "io_bound": "_classify",
    "iter_parallel": "_api",
    "plan": "_api",
    "register_classifier": "_classify",
    "run_parallel": "_api",
    "shutdown": "_api",
    "unregister_classifier": "_classify",
    "use_executor": "_scope",
    "usable_cpus": "_cpu",
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
    "Plan",
    "ResultStream",
    "TaskKind",
    "UnpicklableTaskError",
    "WorkerCrashedError",
    "aiter_parallel",
    "arun_parallel",
    "configure",
    "cpu_bound",
    "get_config",
    "gil_free",
    "io_bound",
    "iter_parallel",
    "plan",
    "register_classifier",
    "run_parallel",
    "shutdown",
    "unregister_classifier",
    "usable_cpus",
    "use_executor",
)

__version__ = "0.1.0"
