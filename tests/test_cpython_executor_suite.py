"""CPython's own generic executor tests, run against AutoExecutor.

``Lib/test/test_concurrent_futures/`` ships with some interpreters (3.13 here): its
``ExecutorTest``, ``WaitTests``, ``AsCompletedTests`` and ``ExecutorShutdownTest`` are
mixed with an ``AutoExecutor`` executor mixin, exactly as the suite mixes them with its
own executors, and run by unittest inside one pytest test per class. Where the
interpreter lacks the package, the tests are skipped; where it ships it, they must
import and run. The few tests that cannot apply are listed in :data:`NOT_APPLICABLE`,
with why (docs/scaling-out.md repeats them).
"""

from __future__ import annotations

import importlib
import importlib.util
import unittest

import pytest

import concurrency_kit as ck


def _ships_executor_tests() -> bool:
    """Whether this interpreter ships ``test.test_concurrent_futures`` as a package (3.12.2+, 3.13)."""
    try:
        spec = importlib.util.find_spec("test.test_concurrent_futures")
    except ImportError:  # no test package at all
        return False
    return spec is not None and spec.submodule_search_locations is not None


if not _ships_executor_tests():
    pytest.skip("this interpreter ships no executor test package", allow_module_level=True)
# Shipped: the modules must import (a skip here would hide a suite that stopped running).
util = importlib.import_module("test.test_concurrent_futures.util")
executor_tests = importlib.import_module("test.test_concurrent_futures.executor")
wait_tests = importlib.import_module("test.test_concurrent_futures.test_wait")
as_completed_tests = importlib.import_module("test.test_concurrent_futures.test_as_completed")
shutdown_tests = importlib.import_module("test.test_concurrent_futures.test_shutdown")

_CHILD_IMPORT = (
    "starts a child interpreter that runs `from concurrent.futures import <executor type>`: "
    "AutoExecutor is not in concurrent.futures"
)
#: Tests of the suite that cannot apply to AutoExecutor, and why.
NOT_APPLICABLE = {
    "test_interpreter_shutdown": _CHILD_IMPORT,
    "test_submit_after_interpreter_shutdown": _CHILD_IMPORT,
    "test_hang_gh83386": _CHILD_IMPORT,
}

CASES = {
    "ExecutorTest": executor_tests.ExecutorTest,
    "WaitTests": wait_tests.WaitTests,
    "AsCompletedTests": as_completed_tests.AsCompletedTests,
    "ExecutorShutdownTest": shutdown_tests.ExecutorShutdownTest,
}


class AutoExecutorMixin(util.ExecutorMixin):  # type: ignore[misc, name-defined]
    executor_type = ck.AutoExecutor


def _not_applicable(_: unittest.TestCase) -> None:
    """Stands in for a test of the suite that cannot apply (skipped, with the reason)."""


def _case(name: str) -> type[unittest.TestCase]:
    skipped = {
        test: unittest.skip(reason)(_not_applicable)
        for test, reason in NOT_APPLICABLE.items()
        if hasattr(CASES[name], test)
    }
    bases = (CASES[name], AutoExecutorMixin, util.BaseTestCase)
    return type(f"Auto{name}", bases, {"__module__": __name__, **skipped})


@pytest.mark.parametrize("name", list(CASES))
def test_cpythons_executor_tests_pass_against_auto_executor(name: str) -> None:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(_case(name))
    result = unittest.TestResult()
    suite.run(result)
    problems = [f"{test.id()}:\n{trace}" for test, trace in result.failures + result.errors]
    assert not problems, "\n\n".join(problems)
    assert result.testsRun >= 5
