"""The built docs site, as a reader sees it: no Sphinx role or docs path printed as text.

mkdocstrings renders Markdown, not reStructuredText: a docstring's ``:func:`plan```
reaches the page as the text ":func:" before the name, and "see docs/coroutines.md" as
a path instead of a link. The site is built from this checkout into a temporary
directory and every page's text is searched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import pytest

from helpers import STRICT_DEPENDENCIES

ROOT = Path(__file__).parent.parent

#: The roles of Sphinx's Python domain that the docstrings used (``:py:func:`` too).
ROLE = re.compile(r":(?:py:)?(?:func|class|exc|meth|attr|data|mod):")

#: A page of the docs named by its path, such as "docs/coroutines.md".
DOCS_PATH = re.compile(r"\bdocs/[\w.-]+\.md\b")


def _docs_extra() -> list[str]:
    """The distributions of pyproject's ``docs`` extra, by name (``mkdocs==1.6.1`` → ``mkdocs``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0] for spec in project["optional-dependencies"]["docs"]]


def _require_docs_extra() -> None:
    """Skip without the docs extra; fail if it is half installed under .ci/run.

    .ci/run installs the docs extra in its first virtual environment only, so its
    absence is no failure; but there, a part of it missing is an install step gone wrong.
    """
    missing: list[str] = []
    for name in _docs_extra():
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    if not missing:
        return
    if STRICT_DEPENDENCIES and len(missing) < len(_docs_extra()):
        pytest.fail(f"the docs extra is half installed: {', '.join(missing)} missing")
    pytest.skip(f"the docs extra is not (all) installed ({', '.join(missing)} missing)")


class _PageText(HTMLParser):
    """A page's text, and the part of it outside links, ``<script>`` and ``<style>``."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.unlinked: list[str] = []
        self._in_link = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002 (HTMLParser's signature)
        self._in_link += tag == "a"
        self._hidden += tag in {"script", "style"}

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._in_link:
            self._in_link -= 1
        if tag in {"script", "style"} and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self.text.append(data)
        if not self._in_link:
            self.unlinked.append(data)


def _page_text(page: Path) -> _PageText:
    parser = _PageText()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def _found(pattern: re.Pattern[str], text: str, where: str) -> list[str]:
    """Each match of ``pattern`` in ``text``, with a few words around it."""
    return [f"{where}: …{text[max(0, m.start() - 40) : m.end() + 30]}…" for m in pattern.finditer(text)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs site of this checkout, built (strict, as mkdocs.yml says) into a temporary directory."""
    _require_docs_extra()
    site_dir = tmp_path_factory.mktemp("site")
    build = ["build", "--strict", "--quiet", "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site_dir)]
    completed = subprocess.run(
        [sys.executable, "-m", "mkdocs", *build],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert completed.returncode == 0, f"mkdocs build failed:\n{completed.stderr[-3000:]}"
    return site_dir


@pytest.mark.slow
def test_no_page_prints_a_sphinx_role(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 10, "the site has fewer pages than the nav names"
    found: list[str] = []
    for page in pages:
        text = " ".join(" ".join(_page_text(page).text).split())
        found += _found(ROLE, text, str(page.relative_to(site)))
    assert not found, f"{len(found)} Sphinx role(s) printed as text:\n" + "\n".join(found)


@pytest.mark.slow
def test_the_api_reference_links_the_pages_it_names(site: Path) -> None:
    page = site / "reference" / "index.html"
    text = " ".join(" ".join(_page_text(page).unlinked).split())
    assert "run_parallel" in text, "the API reference is empty"
    found = _found(DOCS_PATH, text, "reference/index.html")
    assert not found, f"{len(found)} docs path(s) printed instead of linked:\n" + "\n".join(found)
