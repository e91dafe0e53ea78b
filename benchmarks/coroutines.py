"""Coroutines: many waits at once, the per-item cost against a bare ``asyncio.gather``, and a loopback HTTP client.

    python -m benchmarks.coroutines [--turns N] [--count N] [--requests N]

1. ``--count`` (10,000) coroutines each awaiting ``asyncio.sleep(0.05)``, through
   ``run_parallel`` (``workers=count``: all at once, and with the default bound of 256),
   against one wait, a bare ``asyncio.run(gather(...))`` (the loop's own limit) and the
   same count of threads each sleeping 50 ms (``ThreadPoolExecutor`` of ``count`` threads).
2. ``arun_parallel`` on ``--count`` trivial coroutines against ``asyncio.gather`` of
   them, inside one running loop (target: within 1.5×).
3. ``--requests`` (1,000) GETs to an asyncio HTTP server on 127.0.0.1 that answers each
   after 10 ms: an ``async def`` client (asyncio streams) through ``run_parallel``, against
   a blocking client (``http.client``) through ``run_parallel`` (auto picks threads) and
   through ``mode="thread"``.

Every figure is the median of ``--turns`` runs, the contenders taking turns.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import concurrency_kit as ck

WAIT = 0.05
SERVER_DELAY = 0.01
GATHER_TARGET = 1.5


async def wait(x: int) -> int:
    await asyncio.sleep(WAIT)
    return x


def blocking_wait(x: int) -> int:
    time.sleep(WAIT)
    return x


async def trivial(x: int) -> int:
    return x


def _turns(contenders: dict[str, Callable[[], object]], turns: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for turn in range(turns):
        for name in names if turn % 2 == 0 else reversed(names):
            began = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(each) for name, each in times.items()}


def many_waits(count: int, turns: int) -> None:
    print(f"== {count:,} coroutines awaiting asyncio.sleep({WAIT}) (one wait: {WAIT * 1e3:.0f} ms)")

    async def gathered() -> list[int]:
        return await asyncio.gather(*(wait(i) for i in range(count)))

    def threads() -> list[int]:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(blocking_wait, range(count)))

    medians = _turns(
        {
            "asyncio.run(gather(...))": lambda: asyncio.run(gathered()),
            f"run_parallel(workers={count})": lambda: ck.run_parallel(wait, range(count), workers=count),
            "run_parallel (default: 256 at a time)": lambda: ck.run_parallel(wait, range(count)),
            f"{count:,} threads, time.sleep": threads,
        },
        turns,
    )
    for name, seconds in medians.items():
        print(f"  {name:<40} {seconds * 1e3:8.1f} ms  {seconds / WAIT:6.2f}x one wait")


def per_item(count: int, turns: int) -> None:
    print(f"== {count:,} trivial coroutines inside a running loop")

    async def main() -> dict[str, float]:
        times: dict[str, list[float]] = {"asyncio.gather": [], "arun_parallel": []}
        for turn in range(turns):
            for name in ("asyncio.gather", "arun_parallel") if turn % 2 == 0 else ("arun_parallel", "asyncio.gather"):
                began = time.perf_counter()
                if name == "asyncio.gather":
                    await asyncio.gather(*(trivial(i) for i in range(count)))
                else:
                    await ck.arun_parallel(trivial, range(count))
                times[name].append(time.perf_counter() - began)
        return {name: statistics.median(each) for name, each in times.items()}

    medians = asyncio.run(main())
    gather, kit = medians["asyncio.gather"], medians["arun_parallel"]
    verdict = "ok" if kit / gather <= GATHER_TARGET else "MISSED"
    print(f"  asyncio.gather  {gather * 1e3:8.2f} ms  ({gather / count * 1e6:.2f} µs an item)")
    print(f"  arun_parallel   {kit * 1e3:8.2f} ms  ({kit / count * 1e6:.2f} µs an item)")
    print(f"  ratio {kit / gather:.2f}x (target <= {GATHER_TARGET}: {verdict})")


class _Server:
    """An asyncio HTTP/1.1 server on a loopback port, in a thread: each GET answered after SERVER_DELAY."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(SERVER_DELAY)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._answer, "127.0.0.1", 0, backlog=4096))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def __enter__(self) -> _Server:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


def http_client(requests: int, turns: int) -> None:
    print(f"== {requests:,} GETs to a loopback asyncio server that answers after {SERVER_DELAY * 1e3:.0f} ms")
    with _Server() as server:
        port = server.port

        async def fetch_async(_: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            writer.close()
            await writer.wait_closed()
            return body

        def fetch_blocking(_: int) -> bytes:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("GET", "/")
                return connection.getresponse().read()
            finally:
                connection.close()

        modes: dict[str, Any] = {}

        def async_mode() -> None:
            plan = ck.plan(fetch_async, range(requests))
            modes["async def client (auto: async)"] = plan.reason
            assert plan.run() == [b"ok"] * requests

        def auto_blocking() -> None:
            plan = ck.plan(fetch_blocking, range(requests))
            modes["http.client (auto)"] = f"{plan.mode}, {plan.workers} workers"
            assert plan.run() == [b"ok"] * requests

        def thread_mode() -> None:
            assert ck.run_parallel(fetch_blocking, range(requests), mode="thread") == [b"ok"] * requests

        medians = _turns(
            {
                "async def client (auto: async)": async_mode,
                "http.client (auto)": auto_blocking,
                "http.client (mode='thread')": thread_mode,
            },
            turns,
        )
    base = medians["async def client (auto: async)"]
    for name, seconds in medians.items():
        how = f"  [{modes[name]}]" if name in modes and name != "async def client (auto: async)" else ""
        print(f"  {name:<32} {seconds * 1e3:8.1f} ms  {seconds / base:5.2f}x async{how}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=1_000)
    args = parser.parse_args()
    many_waits(args.count, args.turns)
    per_item(args.count, max(args.turns, 7))
    http_client(args.requests, args.turns)
    ck.shutdown()


if __name__ == "__main__":
    main()
