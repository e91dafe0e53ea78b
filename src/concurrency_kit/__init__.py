"""concurrency_kit: map a function over items the fastest way, chosen by measuring.

>>> from concurrency_kit import run_parallel
>>> run_parallel(abs, [-1, 2, -3])
[1, 2, 3]
"""

from typing import TYPE_CHECKING

from ._api import plan as plan
from ._api import run_parallel as run_parallel
from ._api import shutdown as shutdown
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
from ._errors import ConcurrencyKitError as ConcurrencyKitError
from ._errors import UnpicklableTaskError as UnpicklableTaskError
from ._plan import Plan as Plan
from ._probe import Measurement as Measurement

if TYPE_CHECKING:
    from ._crash import WorkerCrashedError as WorkerCrashedError


def __getattr__(name: str) -> object:
    # WorkerCrashedError subclasses BrokenProcessPool, whose module imports
    # multiprocessing: it is loaded when first asked for, not with the package.
    if name == "WorkerCrashedError":
        from ._crash import WorkerCrashedError  # noqa: PLC0415

        return WorkerCrashedError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = (
    "Classifier",
    "ConcurrencyKitError",
    "Config",
    "Measurement",
    "Plan",
    "TaskKind",
    "UnpicklableTaskError",
    "WorkerCrashedError",
    "configure",
    "cpu_bound",
    "get_config",
    "gil_free",
    "io_bound",
    "plan",
    "register_classifier",
    "run_parallel",
    "shutdown",
    "unregister_classifier",
    "usable_cpus",
)

__version__ = "0.1.0"
