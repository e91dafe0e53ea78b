"""Reference tasks from the seed chapter on concurrency and parallelism.

Every task is a module-level function, so it pickles by reference and runs in worker
processes. Each stands for one kind of work:

- ``factorize`` and ``gcd``: pure-Python arithmetic that holds the GIL (``cpu``).
- ``slow_systemcall``: a blocking system call, ``select`` for 0.1 s (``io``).
- ``run_child``: waiting on a child process, as with ``subprocess`` (``io``).
- ``derive_key``: PBKDF2 from ``hashlib``, C code that releases the GIL
  (``gil_free``).
- ``square``: far too little work to be worth any pool.
"""

from __future__ import annotations

import hashlib
import select
import subprocess
import sys

#: ``typing.TYPE_CHECKING``, without importing typing: a worker process imports this
#: module to run a task from it, and typing would add ~3 ms to each worker's start.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = [
    "GCD_PAIRS",
    "SEED_NUMBERS",
    "derive_key",
    "factorize",
    "gcd",
    "run_child",
    "slow_systemcall",
    "square",
]

#: The numbers the seed chapter factorises.
SEED_NUMBERS = [2139079, 1214759, 1516637, 1852285]

#: Pairs for ``gcd``, large enough that the naive search takes a while.
GCD_PAIRS = [
    (1963309, 2265973),
    (2030677, 3814172),
    (1551645, 2229620),
    (2039045, 2020802),
    (1823712, 1924928),
    (2293129, 1020491),
    (1281238, 2273782),
    (3823812, 4237281),
]


def factorize(number: int) -> list[int]:
    """Return every divisor of ``number``, ascending, by trial division (as the seed does).

    Raises:
        ValueError: ``number`` is below 1.
    """
    if number < 1:
        raise ValueError(f"factorize needs a positive number, got {number}")
    return [i for i in range(1, number + 1) if number % i == 0]


def gcd(pair: tuple[int, int]) -> int:
    """Greatest common divisor of a pair of positive ints, by naive downward search."""
    a, b = pair
    for candidate in range(min(a, b), 0, -1):
        if a % candidate == 0 and b % candidate == 0:
            return candidate
    return 1


def slow_systemcall(item: T | None = None) -> T | None:
    """Block for 0.1 s in ``select.select`` (the seed's stand-in for slow I/O); return ``item``."""
    select.select([], [], [], 0.1)
    return item


def run_child(text: str = "hello") -> str:
    """Run a child Python process that echoes ``text`` back; return what it printed.

    Raises:
        subprocess.CalledProcessError: the child failed.
    """
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; sys.stdout.write(sys.argv[1])", text],
        capture_output=True,
        check=True,
        text=True,
    )
    return completed.stdout


def derive_key(password: bytes | str, iterations: int = 100_000) -> bytes:
    """PBKDF2-HMAC-SHA256 of ``password``: CPU work in C with the GIL released."""
    if isinstance(password, str):
        password = password.encode()
    return hashlib.pbkdf2_hmac("sha256", password, b"concurrency_kit", iterations)


def square(x: float) -> float:
    """``x * x``: a task far too small for any pool."""
    return x * x
