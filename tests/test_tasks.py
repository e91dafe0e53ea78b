"""The reference tasks in concurrency_kit.tasks."""

from __future__ import annotations

import time

import pytest

from concurrency_kit import tasks


def test_seed_numbers() -> None:
    assert tasks.SEED_NUMBERS == [2139079, 1214759, 1516637, 1852285]


@pytest.mark.parametrize(
    ("number", "divisors"),
    [(1, [1]), (7, [1, 7]), (12, [1, 2, 3, 4, 6, 12]), (36, [1, 2, 3, 4, 6, 9, 12, 18, 36])],
)
def test_factorize_lists_every_divisor_ascending(number: int, divisors: list[int]) -> None:
    assert tasks.factorize(number) == divisors


@pytest.mark.parametrize("number", [0, -5])
def test_factorize_rejects_numbers_below_one(number: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        tasks.factorize(number)


@pytest.mark.parametrize(("pair", "expected"), [((12, 18), 6), ((7, 13), 1), ((10, 10), 10)])
def test_gcd(pair: tuple[int, int], expected: int) -> None:
    assert tasks.gcd(pair) == expected


def test_slow_systemcall_blocks_a_tenth_of_a_second_and_returns_its_item() -> None:
    start = time.perf_counter()
    assert tasks.slow_systemcall("x") == "x"
    assert time.perf_counter() - start >= 0.09
    assert tasks.slow_systemcall() is None


def test_run_child_returns_what_the_child_printed() -> None:
    assert tasks.run_child("hello there") == "hello there"


def test_derive_key_is_deterministic_pbkdf2() -> None:
    import hashlib

    key = tasks.derive_key("secret", iterations=1000)
    assert key == tasks.derive_key(b"secret", iterations=1000)
    assert key == hashlib.pbkdf2_hmac("sha256", b"secret", b"concurrency_kit", 1000)
    assert len(key) == 32
    assert key != tasks.derive_key("other", iterations=1000)


def test_square() -> None:
    assert tasks.square(3) == 9
    assert tasks.square(-1.5) == 2.25
