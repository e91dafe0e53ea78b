"""Timing helpers: one timed call, a cold call in a fresh interpreter, peak memory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from .runners import Runner

__all__ = ["REPO_ROOT", "RssPoller", "digest", "run_child", "timed_map"]

#: The repository root: the directory that holds the ``benchmarks`` package.
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Seconds a child interpreter may take before its cell is marked as an error.
CHILD_TIMEOUT = 300.0


def digest(results: Sequence[Any]) -> str:
    """A short fingerprint of a result list, to check that every runner agrees."""
    return hashlib.sha1(repr(results).encode(), usedforsecurity=False).hexdigest()[:12]


def timed_map(runner: Runner, fn: Callable[[Any], Any], items: Sequence[Any]) -> tuple[float, str]:
    """Seconds ``runner.map(fn, items)`` took, and its results' digest."""
    start = time.perf_counter()
    results = runner.map(fn, items)
    seconds = time.perf_counter() - start
    if len(results) != len(items):
        raise AssertionError(f"{runner.name} returned {len(results)} results for {len(items)} items")
    return seconds, digest(results)


def run_child(*args: str, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run ``python -m benchmarks._child *args`` in a fresh interpreter; its JSON answer.

    Raises:
        RuntimeError: the child failed, timed out or printed no answer.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "benchmarks._child", *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit status {completed.returncode}: {tail}")
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


class RssPoller:
    """Samples the resident memory of this process plus all its descendants in a thread.

    Use as a context manager; ``peak`` is the largest sum seen (bytes), ``children`` the
    most descendants seen at once. Memory shared between processes (pages inherited by
    ``fork``) is counted once per process, so a sum is an upper bound.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self.children = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="benchmarks-rss-poller", daemon=True)
        self._process = psutil.Process()

    def sample(self) -> int:
        """Resident bytes of this process and its descendants, now."""
        total: int = self._process.memory_info().rss
        descendants = self._process.children(recursive=True)
        for child in descendants:
            with contextlib.suppress(psutil.Error):  # it exited meanwhile
                total += child.memory_info().rss
        self.children = max(self.children, len(descendants))
        return total

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())
