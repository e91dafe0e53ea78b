"""``python -m benchmarks.pool_start``: a process pool's start, per start method, on this machine.

For each start method (``forkserver``, ``spawn``, ``fork``) a fresh interpreter starts
the shared pool of 2 workers the way auto does (``prestart_process_pool``), times it to
its first answer, stops it, and starts it again, three times: the first is the **cold
start** (the forkserver too, where there is one), the others the **restart** (the
workers alone, from a running server). With ``--busy`` a thread runs Python bytecode
meanwhile, as auto's calling thread does while a pool starts for it. The parent runs
``--runs`` such interpreters, the methods taking turns, and prints the medians: the
figures behind the cost model's starting values (``concurrency_kit._core.costmodel``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import threading
import time

#: Restarts timed in each interpreter, after its cold start.
RESTARTS = 3


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))  # bytecode that holds the GIL, as a computing item does


def _child(method: str, *, busy: bool) -> None:
    import concurrency_kit as ck
    from concurrency_kit._backends import pools as _pools

    ck.configure(start_method=method)

    def once() -> float:
        stop = threading.Event()
        spinner = threading.Thread(target=_spin, args=(stop,))
        if busy:
            spinner.start()
        began = time.perf_counter()
        starting = _pools.prestart_process_pool(2)
        assert starting is not None
        starting.up.wait()
        seconds = time.perf_counter() - began
        stop.set()
        if busy:
            spinner.join()
        starting.join()
        ck.shutdown()
        return seconds

    cold = once()
    print(json.dumps({"cold": cold, "restart": [once() for _ in range(RESTARTS)]}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per start method")
    parser.add_argument("--busy", action="store_true", help="a thread computes while the pool starts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, busy=args.busy)
        return
    methods = [m for m in ("forkserver", "spawn", "fork") if m in multiprocessing.get_all_start_methods()]
    cold: dict[str, list[float]] = {m: [] for m in methods}
    restart: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.runs):
        for method in methods:  # taking turns, so that noise spreads evenly
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.pool_start", "--child", method, *(["--busy"] if args.busy else [])],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            cold[method].append(figures["cold"])
            restart[method].append(statistics.median(figures["restart"]))
    beside = "beside a computing thread" if args.busy else "idle"
    print(f"pool of 2, start to first answer ({beside}), medians of {args.runs} interpreters:")
    for method in methods:
        c, r = statistics.median(cold[method]), statistics.median(restart[method])
        print(f"  {method:<10}  cold start {c * 1e3:7.1f} ms   restart {r * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
