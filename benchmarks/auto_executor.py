"""``AutoExecutor().map`` against ``ProcessPoolExecutor().map`` (its default ``chunksize=1``), warm, on the matrix.

    python -m benchmarks.auto_executor [--turns N] [--workloads a,b]

Both executors are made once and kept (warm); per workload, a warm-up call of each,
then they take turns call by call (alternating which goes first), and the report gives
each one's median and the ratio (target: AutoExecutor never more than 1.1× behind).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import Executor, ProcessPoolExecutor

import concurrency_kit as ck
from benchmarks.workloads import WORKLOADS, get_workload

TARGET = 1.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--workloads", default=",".join(w.name for w in WORKLOADS))
    args = parser.parse_args()
    with ProcessPoolExecutor() as standard, ck.AutoExecutor() as auto:
        print(f"{'workload':<16} {'ppe map':>11} {'auto map':>11} {'ratio':>7}")
        for name in args.workloads.split(","):
            workload = get_workload(name)
            items = workload.items(workload.size("full"))
            executors: tuple[Executor, Executor] = (standard, auto)
            times: tuple[list[float], list[float]] = ([], [])
            for executor in executors:
                list(executor.map(workload.fn, items))
            for turn in range(args.turns):
                for which in (0, 1) if turn % 2 == 0 else (1, 0):
                    began = time.perf_counter()
                    list(executors[which].map(workload.fn, items))
                    times[which].append(time.perf_counter() - began)
            ppe, kit = statistics.median(times[0]), statistics.median(times[1])
            verdict = "ok" if kit / ppe <= TARGET else "MISSED"
            figures = f"{ppe * 1e3:8.1f} ms {kit * 1e3:8.1f} ms {kit / ppe:6.2f}x"
            print(f"{name:<16} {figures}  (target <= {TARGET}: {verdict})")


if __name__ == "__main__":
    main()
