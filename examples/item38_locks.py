"""Item 38: use Lock to prevent data races in threads.

The GIL makes each bytecode instruction atomic, not each line of Python: ``count += 1``
is a read, an add and a write, and another thread may run between the read and the
write. Five threads each count 1,000 sensor readings into a shared counter:

- without a lock, some updates are lost (a thread writes back a stale count);
- with a ``threading.Lock`` around the read-modify-write, the total is right;
- with ``run_parallel``, each call *returns* its own count and nothing is shared, so
  there is nothing to lock: the library hands each result back to the calling thread
  (through futures, which synchronise themselves), and ``sum`` adds them up there.

    python examples/item38_locks.py
"""

from __future__ import annotations

import threading
import time

from concurrency_kit import run_parallel

SENSORS = 5
READINGS = 1_000


class Counter:
    """A shared count, updated by read, modify, write, as ``self.count += offset`` is."""

    def __init__(self) -> None:
        self.count = 0

    def increment(self, offset: int) -> None:
        value = self.count
        # On CPython 3.11+ a bare ``self.count += offset`` seldom loses an update: the
        # interpreter only switches threads at a few points, and rarely between the read
        # and the write. ``time.sleep(0)`` releases the GIL right there, so that another
        # thread runs in the middle of the update every time it can: the race the
        # chapter describes, made reliably visible.
        time.sleep(0)
        self.count = value + offset


class LockingCounter(Counter):
    """The same update, holding a lock: no other thread can come between the read and the write."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def increment(self, offset: int) -> None:
        with self.lock:
            super().increment(offset)


def count_in_threads(counter: Counter) -> int:
    start = threading.Barrier(SENSORS)  # every thread starts counting at the same moment

    def worker() -> None:
        start.wait()
        for _ in range(READINGS):
            counter.increment(1)  # one sensor reading

    threads = [threading.Thread(target=worker) for _ in range(SENSORS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counter.count


def read_sensor(sensor: int) -> int:
    """Count one sensor's readings locally and return the count: nothing shared, nothing to lock."""
    del sensor  # every sensor gives the same number of readings here
    count = 0
    for _ in range(READINGS):
        count += 1  # a local variable: no other thread can see it
        time.sleep(0)  # the same switch point as in Counter.increment, harmless here
    return count


def main() -> None:
    expected = SENSORS * READINGS
    began = time.perf_counter()
    wrong = count_in_threads(Counter())
    print(
        f"without a lock: {wrong} of {expected} ({expected - wrong} updates lost), {time.perf_counter() - began:.2f} s"
    )

    began = time.perf_counter()
    right = count_in_threads(LockingCounter())
    print(f"with a Lock:    {right} of {expected}, {time.perf_counter() - began:.2f} s")
    assert right == expected

    began = time.perf_counter()
    counts = run_parallel(read_sensor, range(SENSORS), mode="thread")  # five threads, as above
    total = sum(counts)
    print(f"run_parallel, results summed: {total} of {expected} {counts}, {time.perf_counter() - began:.2f} s")
    assert total == expected
    print(
        f"You should see: a total far below {expected} without the lock (most updates lost), and exactly "
        f"{expected} with the Lock and with run_parallel's returned counts."
    )


if __name__ == "__main__":
    main()
