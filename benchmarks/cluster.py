"""Through a Dask cluster: ``run_parallel(..., executor=...)`` against Dask's own ``client.map`` + ``gather``.

    python -m benchmarks.cluster [--turns N] [--workers N]

Starts a ``distributed.LocalCluster`` (``--workers`` worker processes of one thread, no
dashboard; the ``dask`` extra), then, per workload, alternates the two runners call by
call (the first call of each is a warm-up) and reports each one's median and the ratio
(target: concurrency_kit within 1.2× of Dask's, and ahead on the 1 ms items). Also the
executor's per-task cost as concurrency_kit measured it, and the chunk size it chose.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import concurrency_kit as ck
from benchmarks.workloads import get_workload
from concurrency_kit._backends.registry import task_overhead

WORKLOADS = ("factorize_x4", "cpu1ms_x2000", "uneven_x200")
#: concurrency_kit's time over Dask's, at most (issue 20).
TARGET = 1.2


def _medians(first: Callable[[], object], second: Callable[[], object], turns: int) -> tuple[float, float]:
    times: tuple[list[float], list[float]] = ([], [])
    for call in (first, second):
        call()
    for turn in range(turns):
        for which in (0, 1) if turn % 2 == 0 else (1, 0):
            began = time.perf_counter()
            (first, second)[which]()
            times[which].append(time.perf_counter() - began)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        executor = client.get_executor(pure=False)

        def dask_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
            return client.gather(client.map(fn, items, pure=False))  # type: ignore[no-any-return]

        print(f"LocalCluster: {args.workers} worker processes, 1 thread each")
        print(f"task overhead as measured: {task_overhead(executor) * 1e3:.1f} ms")
        print(f"{'workload':<16} {'dask map':>10} {'ck executor':>12} {'ratio':>7}  chunks")
        for name in WORKLOADS:
            workload = get_workload(name)
            items = workload.items(workload.size("full"))
            fn = workload.fn
            dask_time, ck_time = _medians(
                lambda fn=fn, items=items: dask_map(fn, items),
                lambda fn=fn, items=items: ck.run_parallel(fn, items, executor=executor),
                args.turns,
            )
            chunks = ck.plan(fn, items, executor=executor).chunksize
            ratio = ck_time / dask_time
            verdict = "ok" if ratio <= TARGET else "MISSED"
            print(
                f"{name:<16} {dask_time * 1e3:8.1f} ms {ck_time * 1e3:9.1f} ms {ratio:6.2f}x  {chunks:>5}"
                f"  (target <= {TARGET}: {verdict})"
            )
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
