"""The seed chapter's experiments through concurrency_kit, one per item.

Run it as a script: ``python examples/seed_chapter.py``. The ``__main__`` guard matters:
worker processes import this file, and must not start the experiments again.
"""

from __future__ import annotations

import time

from concurrency_kit import plan
from concurrency_kit.tasks import SEED_NUMBERS, derive_key, factorize, slow_systemcall


def show(title: str, fn: object, items: object) -> None:
    start = time.perf_counter()
    chosen = plan(fn, items)  # type: ignore[arg-type]
    results = chosen.run()
    print(f"{title}: {len(results)} results in {time.perf_counter() - start:.3f} s on {chosen.mode}")
    print(f"    {chosen.reason}")


def main() -> None:
    # Item 37: threads do not make bytecode parallel (the GIL) ...
    show("factorize (CPU under the GIL)", factorize, SEED_NUMBERS)
    # ... but they do overlap blocking system calls.
    show("slow_systemcall (blocking I/O)", slow_systemcall, range(5))
    # C code that releases the GIL runs in parallel threads.
    show("derive_key (GIL released in C)", derive_key, [str(i) for i in range(8)])


if __name__ == "__main__":
    main()
