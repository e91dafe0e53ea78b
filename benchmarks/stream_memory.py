"""Peak memory of streaming: 1,000,000 items of 1 KB through iter_parallel, in a fresh interpreter per mode.

    python -m benchmarks.stream_memory [--items N] [--modes process,thread,serial]

Prints, per mode, the parent's peak RSS growth over its RSS before the stream started
(``resource.getrusage``'s high-water mark, Linux: KiB), the time taken and the items per
second. The items come from a generator (1 KB of bytes each, made as they are taken), so
a stream that held them all would grow by a gigabyte; the target is under 100 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

ITEM_BYTES = 1024


def _items(count: int) -> Iterator[bytes]:
    for index in range(count):
        yield index.to_bytes(8, "little") * (ITEM_BYTES // 8)


def first_byte(blob: bytes) -> int:
    """The work per item: next to none, so the stream's own costs show."""
    return blob[0]


def _child(mode: str, count: int) -> None:
    import concurrency_kit as ck

    before_kib = _rss_kib()
    began = time.perf_counter()
    total = 0
    for value in ck.iter_parallel(first_byte, _items(count), mode, chunksize=1000 if mode == "process" else None):
        total += value
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "growth_mib": (peak_kib - before_kib) / 1024, "seconds": seconds}))


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--modes", default="process,thread,serial")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.items)
        return
    for mode in args.modes.split(","):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.stream_memory", "--child", mode, "--items", str(args.items)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout)
        rate = args.items / figures["seconds"]
        print(
            f"{mode:>8}: peak RSS +{figures['growth_mib']:.1f} MiB over the start (target < 100), "
            f"{figures['seconds']:.1f} s, {rate:,.0f} items/s"
        )


if __name__ == "__main__":
    main()
