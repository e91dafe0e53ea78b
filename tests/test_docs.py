"""Every Python snippet in the docs runs as pasted (each in a fresh interpreter, as a script)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            found.append((f"{page.name}#{number}", match.group(1)))
    return found


SNIPPETS = _snippets()


def test_the_docs_have_snippets() -> None:
    assert len(SNIPPETS) >= 10


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_a_snippet_runs_as_pasted(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code)
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=50, cwd=tmp_path, check=False
    )
    assert completed.returncode == 0, f"{where} failed:\n{completed.stderr[-3000:]}"
