"""``python -m benchmarks.pipeline``: pipelines against the hand-written and library ways, cold and warm.

Two shapes of ``--items`` items (400), each runner in a fresh interpreter, the runners
taking turns for ``--rounds`` rounds; medians are printed as ratios to the shape's bound:

    fetch → parse → store   a 20 ms GET from a loopback HTTP server; 5 ms of bytecode;
                            a 0.2 ms sqlite insert (a connection per thread)
    parse → score           two computing stages of 3 ms of bytecode each

    pipeline          ck.pipeline(items).map(...).map(...)..., all auto
    nested            iter_parallel(c, iter_parallel(b, iter_parallel(a, items)))
    queues            the chapter's: a thread per stage, queue.Queue between them
    pypeln            pypeln with workers picked by hand (threads for waits, processes
                      for computing, ``--pypeln-fetch`` fetch threads)
    fused-ppe         (parse → score) one ProcessPoolExecutor running the stages fused
    bound             the pipeline's CPU time over the CPUs (measured: an item through the
                      stages one after another, the loopback server's CPU for its fetch
                      included), or one fetch's wait, whichever is more

"cold": the runner's first run in its interpreter; "warm": its second, there. Each
runner's library is imported before the clock (as the matrix, ``benchmarks.run``, does),
so cold counts pools and measuring, not imports.

``--trivial``: three trivial stages against a chain of generator expressions (fusion).
``--memory``: 100,000 items of 1 KB from an endless source through a slow sink, peak RSS growth.
"""

from __future__ import annotations

import argparse
import http.server
import importlib
import importlib.util
import itertools
import json
import os
import queue
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

FETCH_SECONDS = 0.02
PARSE_SECONDS = 0.005
SCORE_SECONDS = 0.003
_local = threading.local()


# The stages.


def _busy(seconds: float) -> int:
    end, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        count += 1
    return count


def fetch(item: int) -> bytes:
    """A GET from the loopback server (it waits FETCH_SECONDS before answering)."""
    with urllib.request.urlopen(f"{os.environ['BENCH_URL']}/{item}", timeout=30) as answer:
        return bytes(answer.read())


def parse(data: bytes) -> tuple[int, int]:
    """5 ms of bytecode."""
    _busy(PARSE_SECONDS)
    return int(data.split(b"-")[1]), len(data)


def parse_item(item: int) -> tuple[int, int]:
    """``parse`` of a number (the computing shape's first stage)."""
    _busy(SCORE_SECONDS)
    return item, item * 7


def score(record: tuple[int, int]) -> int:
    _busy(SCORE_SECONDS)
    return record[0] + record[1]


def parse_and_score(item: int) -> int:
    return score(parse_item(item))


def store(record: tuple[int, int]) -> int:
    """A sqlite insert and commit, on this thread's connection."""
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = sqlite3.connect(os.environ["BENCH_DB"], timeout=30, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("CREATE TABLE IF NOT EXISTS rows (item INTEGER, size INTEGER)")
        _local.connection = connection
    with connection:
        connection.execute("INSERT INTO rows VALUES (?, ?)", record)
    return record[0]


# The loopback server.


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(FETCH_SECONDS)
        body = f"item-{self.path.strip('/')}-".encode() + b"x" * 200
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: hundreds of fetches connect at once


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = _Server(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# The runners.

SHAPES: dict[str, tuple[Callable[..., Any], ...]] = {
    "fetch-parse-store": (fetch, parse, store),
    "parse-score": (parse_item, score),
}


def by_pipeline(stages: tuple[Callable[..., Any], ...], items: Iterable[int]) -> list[Any]:
    import concurrency_kit as ck

    p: Any = ck.pipeline(items)
    for stage in stages:
        p = p.map(stage)
    return list(p.run())


def by_nesting(stages: tuple[Callable[..., Any], ...], items: Iterable[int]) -> list[Any]:
    import concurrency_kit as ck

    results: Iterable[Any] = items
    for stage in stages:
        results = ck.iter_parallel(stage, results)
    return list(results)


def by_queues(stages: tuple[Callable[..., Any], ...], items: Iterable[int]) -> list[Any]:
    """The chapter's pipeline: a thread per stage, bounded queues, a sentinel to stop."""
    end = object()
    queues: list[queue.Queue[Any]] = [queue.Queue(maxsize=10) for _ in range(len(stages) + 1)]

    def work(fn: Callable[[Any], Any], inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        while (item := inbox.get()) is not end:
            outbox.put(fn(item))
        outbox.put(end)

    threads = [
        threading.Thread(target=work, args=(fn, queues[n], queues[n + 1]), daemon=True) for n, fn in enumerate(stages)
    ]
    for thread in threads:
        thread.start()

    def feed() -> None:
        for item in items:
            queues[0].put(item)
        queues[0].put(end)

    threading.Thread(target=feed, daemon=True).start()
    results = []
    while (result := queues[-1].get()) is not end:
        results.append(result)
    return results


def by_pypeln(stages: tuple[Callable[..., Any], ...], items: Iterable[int], fetch_threads: int) -> list[Any]:
    import pypeln as pl

    cpus = os.cpu_count() or 1
    stream: Any = items
    for stage in stages:
        if stage is fetch:
            stream = pl.thread.map(stage, stream, workers=fetch_threads, maxsize=fetch_threads)
        elif stage is store:
            stream = pl.thread.map(stage, stream, workers=1, maxsize=16)
        else:
            stream = pl.process.map(stage, stream, workers=cpus, maxsize=4 * cpus)
    return list(stream)


def by_fused_pool(stages: tuple[Callable[..., Any], ...], items: Iterable[int]) -> list[Any]:
    assert stages == SHAPES["parse-score"]
    listed = list(items)
    cpus = os.cpu_count() or 1
    with ProcessPoolExecutor(cpus) as pool:
        return list(pool.map(parse_and_score, listed, chunksize=max(1, len(listed) // (8 * cpus))))


RUNNERS: dict[str, Callable[..., list[Any]]] = {
    "pipeline": by_pipeline,
    "nested": by_nesting,
    "queues": by_queues,
    "pypeln": by_pypeln,
    "fused-ppe": by_fused_pool,
}


#: What each runner imports before its clock: the names it uses (concurrency_kit imports
#: its planner and a pipeline's modules when a name is first read).
IMPORTS: dict[str, tuple[str, ...]] = {
    "pipeline": ("concurrency_kit.pipeline",),
    "nested": ("concurrency_kit.iter_parallel",),
    "pypeln": ("pypeln.process", "pypeln.thread"),
}


def _import(names: tuple[str, ...]) -> None:
    """Import each ``module.name`` (read the name: a lazy attribute imports what it needs)."""
    for dotted in names:
        module, _, name = dotted.rpartition(".")
        getattr(importlib.import_module(module), name)


def _one(shape: str, runner: str, items: int, fetch_threads: int) -> dict[str, float]:
    """In a fresh interpreter: the runner's first run (cold) and its second (warm), its imports done first."""
    stages = SHAPES[shape]
    run = RUNNERS[runner]
    _import(IMPORTS.get(runner, ()))
    args = (fetch_threads,) if runner == "pypeln" else ()
    seconds = []
    for _ in range(2):
        began = time.perf_counter()
        results = run(stages, range(items), *args)
        seconds.append(time.perf_counter() - began)
        assert len(results) == items, (runner, len(results))
    return {"cold": seconds[0], "warm": seconds[1]}


def _serial_cpu(shape: str, sample: int) -> float:
    """In a fresh interpreter: the CPU seconds an item costs this process, through the stages one after another."""
    stages = SHAPES[shape]
    began = time.process_time()
    for item in range(sample):
        value: Any = item
        for stage in stages:
            value = stage(value)
    return (time.process_time() - began) / sample


def bound(shape: str, items: int, env: dict[str, str], sample: int = 40) -> float:
    """The pipeline's CPU time over the CPUs (the loopback server's included), or its slowest stage's own limit.

    An item's CPU is measured: its stages one after another in a fresh interpreter, and
    what the server in this process spent on its fetches meanwhile.
    """
    cpus = os.cpu_count() or 1
    server_began = time.process_time()
    per_item = _spawn(["--cpu-one", shape, "--items", str(sample)], env)["cpu"]
    per_item += (time.process_time() - server_began) / sample
    limit = FETCH_SECONDS if shape == "fetch-parse-store" else 0.0
    return max(items * per_item / cpus, limit)


# The extra checks.


def trivial(items: int) -> dict[str, float]:
    """Three trivial stages: a pipeline against a chain of generator expressions, per item, medians of 5."""
    import concurrency_kit as ck

    def plus(x: int) -> int:
        return x + 1

    def twice(x: int) -> int:
        return x * 2

    def minus(x: int) -> int:
        return x - 3

    source = list(range(items))
    chain_s, pipe_s = [], []
    for _ in range(5):
        began = time.perf_counter()
        sum(1 for _ in (minus(z) for z in (twice(y) for y in (plus(x) for x in source))))
        chain_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        sum(1 for _ in ck.pipeline(source).map(plus).map(twice).map(minus))
        pipe_s.append(time.perf_counter() - began)
    chain, pipe = statistics.median(chain_s), statistics.median(pipe_s)
    return {"chain_ns": chain / items * 1e9, "pipeline_ns": pipe / items * 1e9, "ratio": pipe / chain}


def _kilobyte(index: int) -> bytes:
    return index.to_bytes(8, "little") * 128


def _slow_sink(data: bytes) -> int:
    time.sleep(0.00002)
    return len(data)


def memory(items: int) -> dict[str, float]:
    """An endless source of 1 KB items through a thread stage and a slow sink: peak RSS growth (MB)."""
    import psutil

    import concurrency_kit as ck

    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    stream = ck.pipeline(itertools.count()).map(_kilobyte, mode="thread").map(_slow_sink, mode="thread").stream()
    with stream:
        for seen, _ in enumerate(stream):
            if seen % 1000 == 0:
                peak = max(peak, process.memory_info().rss)
            if seen == items:
                break
    return {"items": items, "peak_growth_mb": (peak - before) / 2**20}


def _child(args: argparse.Namespace) -> None:
    if args.cpu_one:
        with tempfile.TemporaryDirectory() as folder:
            os.environ["BENCH_DB"] = os.path.join(folder, "rows.db")
            print(json.dumps({"cpu": _serial_cpu(args.cpu_one, args.items)}))
    elif args.trivial_one:
        print(json.dumps(trivial(args.items * 500)))
    elif args.memory_one:
        print(json.dumps(memory(100_000)))
    else:
        shape, runner = args.one.split(":")
        print(json.dumps(_one(shape, runner, args.items, args.pypeln_fetch)))


def _spawn(flags: list[str], env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline", *flags], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(flags)} failed:\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _runners(shape: str) -> list[str]:
    """The runners for ``shape`` (pypeln where it is installed: the ``bench`` extra)."""
    has_pypeln = importlib.util.find_spec("pypeln") is not None
    return [r for r in RUNNERS if (r != "fused-ppe" or shape == "parse-score") and (r != "pypeln" or has_pypeln)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pypeln-fetch", type=int, default=32)
    parser.add_argument("--shape", choices=sorted(SHAPES), action="append")
    parser.add_argument("--trivial", action="store_true")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--trivial-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cpu-one", help=argparse.SUPPRESS)
    parser.add_argument("--memory-one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one or args.trivial_one or args.memory_one or args.cpu_one:
        _child(args)
        return
    env = dict(os.environ)
    if args.trivial:
        print("trivial:", json.dumps(_spawn(["--trivial-one", "--items", str(args.items)], env)))
    if args.memory:
        print("memory:", json.dumps(_spawn(["--memory-one"], env)))
    if args.trivial or args.memory:
        return
    server, url = serve()
    try:
        for shape in args.shape or sorted(SHAPES):
            _compare(shape, args, {**env, "BENCH_URL": url})
    finally:
        server.shutdown()


def _compare(shape: str, args: argparse.Namespace, env: dict[str, str]) -> None:
    """Each runner in turn, for ``args.rounds`` rounds; the medians as ratios to the bound."""
    times: dict[str, dict[str, list[float]]] = {r: {"cold": [], "warm": []} for r in _runners(shape)}
    for _ in range(args.rounds):
        for runner in _runners(shape):
            with tempfile.TemporaryDirectory() as folder:
                run_env = {**env, "BENCH_DB": os.path.join(folder, "rows.db")}
                flags = ["--one", f"{shape}:{runner}", "--items", str(args.items)]
                got = _spawn([*flags, "--pypeln-fetch", str(args.pypeln_fetch)], run_env)
            for key in ("cold", "warm"):
                times[runner][key].append(got[key])
    limit = bound(shape, args.items, env)
    print(f"{shape}: {args.items} items, bound {limit:.3f} s ({os.cpu_count()} CPUs); medians of {args.rounds}")
    for runner, both in times.items():
        warm, cold = statistics.median(both["warm"]), statistics.median(both["cold"])
        print(f"  {runner:10} warm {warm:.3f} s ({warm / limit:.2f}×)   cold {cold:.3f} s ({cold / limit:.2f}×)")


if __name__ == "__main__":
    main()
