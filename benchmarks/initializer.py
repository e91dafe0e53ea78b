"""``python -m benchmarks.initializer``: a slow worker set-up (a "model load") before many short items.

The issue's example: an initializer of ``--load`` seconds (1 s) and ``--items`` items
(200) of ``--item-ms`` milliseconds (5 ms) of computing. Each way runs in a fresh
interpreter, the ways taking turns for ``--runs`` rounds; the medians are printed:

    auto             run_parallel(predict, items, initializer=load)
    ppe              ProcessPoolExecutor(initializer=load).map(predict, items, chunksize=…)
    per-item         the load inside each item (as a library without initializers makes
                     you write it), on a ProcessPoolExecutor: timed on ``--per-item`` items
                     and scaled to the whole input
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

_model: dict[str, float] = {}


def load(seconds: float) -> None:
    """The model load: ``seconds`` of computing."""
    _busy(seconds)
    _model["loaded"] = seconds


def predict(item_seconds: float) -> float:
    """An item that needs the model."""
    assert "loaded" in _model
    _busy(item_seconds)
    return item_seconds


def load_and_predict(args: tuple[float, float]) -> float:
    """An item that loads the model itself."""
    load(args[0])
    return predict(args[1])


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _one(way: str, load_s: float, items: int, item_s: float, per_item: int) -> float:
    import concurrency_kit as ck

    workers = os.cpu_count() or 1
    began = time.perf_counter()
    if way == "auto":
        ck.run_parallel(predict, [item_s] * items, initializer=load, initargs=(load_s,))
    elif way == "ppe":
        with ProcessPoolExecutor(workers, initializer=load, initargs=(load_s,)) as pool:
            list(pool.map(predict, [item_s] * items, chunksize=max(1, items // (4 * workers))))
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(load_and_predict, [(load_s, item_s)] * per_item))
        return (time.perf_counter() - began) * items / per_item
    return time.perf_counter() - began


def main() -> None:
    """Run the rounds, each way in a fresh interpreter; print the medians (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=float, default=1.0)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--item-ms", type=float, default=5.0)
    parser.add_argument("--per-item", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.load, args.items, args.item_ms / 1000, args.per_item)
    if args.one:
        print(_one(args.one, *shape))
        return
    times: dict[str, list[float]] = {"auto": [], "ppe": [], "per-item": []}
    for _ in range(args.runs):
        for way, seconds in times.items():
            command = [sys.executable, "-m", "benchmarks.initializer", "--one", way, "--load", str(args.load)]
            command += ["--items", str(args.items), "--item-ms", str(args.item_ms), "--per-item", str(args.per_item)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            seconds.append(float(done.stdout.strip().splitlines()[-1]))
    print(json.dumps({way: round(statistics.median(seconds), 3) for way, seconds in times.items()}))


if __name__ == "__main__":
    main()
