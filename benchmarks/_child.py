"""A fresh interpreter's one measurement; prints one line of JSON.

``python -m benchmarks._child cold RUNNER WORKLOAD SIZE``: the first call in this
interpreter, pool start-up (and concurrency_kit's probe) included; imports and building
the items are not timed.

``python -m benchmarks._child memory RUNNER WORKLOAD SIZE``: peak resident memory of this
process and its children during the first call.
"""

from __future__ import annotations

import gc
import json
import sys
import time

from .measure import RssPoller, digest
from .runners import get_runner, shutdown_peers
from .workloads import get_workload


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] not in ("cold", "memory"):
        print(__doc__, file=sys.stderr)
        return 2
    what, runner_name, workload_name, size = argv[0], argv[1], argv[2], int(argv[3])
    workload = get_workload(workload_name)
    runner = get_runner(runner_name)()
    if runner.needs_joblib:
        import joblib  # noqa: F401 - imported before the clock starts, as concurrency_kit is
    items = workload.items(size)
    gc.collect()
    answer: dict[str, object] = {"runner": runner_name, "workload": workload_name, "size": size}
    try:
        if what == "cold":
            start = time.perf_counter()
            runner.open(len(items))
            results = runner.map(workload.fn, items)
            answer["seconds"] = time.perf_counter() - start
        else:
            poller = RssPoller()
            answer["baseline_bytes"] = poller.sample()
            with poller:
                start = time.perf_counter()
                runner.open(len(items))
                results = runner.map(workload.fn, items)
                answer["seconds"] = time.perf_counter() - start
            answer["peak_bytes"] = poller.peak
            answer["children"] = poller.children
            answer["samples"] = poller.samples
        answer["digest"] = digest(results)
        answer["reason"] = runner.reason
    finally:
        runner.close()
        shutdown_peers(joblib_used=runner.needs_joblib)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
