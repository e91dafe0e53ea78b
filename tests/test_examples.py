"""Every script in examples/ runs to its end, as a reader would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_runs(path: Path) -> None:
    # A script of its own, in a process of its own: its pools and workers end with it.
    completed = subprocess.run(
        [sys.executable, str(path)], timeout=50, capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert completed.returncode == 0, f"{path.name} exited with {completed.returncode}:\n{completed.stderr}"
    if path.name.startswith("item"):
        assert "You should see:" in completed.stdout, completed.stdout
