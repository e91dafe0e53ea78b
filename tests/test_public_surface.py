"""The public surface: `__all__`, the API reference that documents each name, nothing private leaking."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import concurrency_kit as ck

REFERENCE = Path(__file__).parent.parent / "docs" / "reference.md"
#: Public functions that raise nothing of their own (every other one documents ``Raises:``).
RAISE_NOTHING = {"get_config", "shutdown", "usable_cpus"}


def _referenced() -> set[str]:
    return set(re.findall(r"^::: concurrency_kit\.(\w+)", REFERENCE.read_text(), flags=re.MULTILINE))


def test_all_is_a_tuple_of_public_names_each_exported_lazily() -> None:
    assert isinstance(ck.__all__, tuple)
    assert len(set(ck.__all__)) == len(ck.__all__)
    assert not [name for name in ck.__all__ if name.startswith("_")]
    assert set(ck.__all__) == set(ck._EXPORTS)


@pytest.mark.parametrize("name", ck.__all__)
def test_every_public_name_is_importable_and_comes_from_the_package(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from concurrency_kit import {name}", namespace)
    obj = namespace[name]
    module = getattr(obj, "__module__", "")
    assert module == "concurrency_kit" or module.startswith("concurrency_kit.")
    assert not getattr(obj, "__name__", name).startswith("_"), f"{name} is a private object under a public name"


def test_the_api_reference_documents_every_public_name_and_nothing_else() -> None:
    referenced = _referenced()
    assert set(ck.__all__) - referenced == set(), "public names missing from docs/reference.md"
    assert referenced - set(ck.__all__) == {"tasks"}, "docs/reference.md documents names that are not public"


@pytest.mark.parametrize("name", sorted(set(ck.__all__) - RAISE_NOTHING))
def test_every_public_function_documents_what_it_raises(name: str) -> None:
    obj = getattr(ck, name)
    if not inspect.isfunction(obj):
        pytest.skip("a class: its methods document their own")
    assert "Raises:" in (inspect.getdoc(obj) or ""), f"concurrency_kit.{name}'s docstring has no Raises: section"
