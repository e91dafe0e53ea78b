"""Item 39: use Queue to coordinate work between threads.

The chapter's pipeline: download, resize and upload 20 images, each stage a blocking
wait of 20 ms. Written two ways:

- by hand: a worker thread per stage, ``queue.Queue`` between the stages (a consumer
  blocks in ``get`` until there is work), a sentinel to tell each worker to stop, and
  ``task_done``/``join`` to know when a queue's work is done. Each stage runs one item at
  a time, so the pipeline goes as fast as one item per stage-time;
- with ``iter_parallel``, each stage's stream feeding the next:
  ``iter_parallel(upload, iter_parallel(resize, iter_parallel(download, images)))``.
  Every stage reads its input lazily and at most ``max_in_flight`` items ahead, as a
  bounded queue would, and runs in as many threads as auto measures it needs;
- as a pipeline: ``pipeline(images).map(download).map(resize).map(upload)``. The same
  bounded queues, written for you: each stage measured and run in as many threads as it
  needs, one bound on the items in flight across all of them, an error in any stage
  ending the whole run, and a report of where the time went.

All three give the same results, in the same order.

    python examples/item39_queues.py
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

from concurrency_kit import iter_parallel, pipeline

IMAGES = 20
STAGE_SECONDS = 0.02
#: Put on a queue to tell its worker that no more work will come.
SENTINEL = object()


def download(image: int) -> str:
    time.sleep(STAGE_SECONDS)  # a blocking wait, as for a network read
    return f"image{image}"


def resize(data: str) -> str:
    time.sleep(STAGE_SECONDS)
    return f"{data}-resized"


def upload(data: str) -> str:
    time.sleep(STAGE_SECONDS)
    return f"{data}-uploaded"


def stage_worker(fn: Callable[[str], str], inbox: queue.Queue[object], outbox: queue.Queue[object]) -> None:
    """Take items from ``inbox`` until the sentinel, put ``fn(item)`` on ``outbox``."""
    while True:
        item = inbox.get()  # blocks until there is work: no busy polling
        try:
            if item is SENTINEL:
                return
            outbox.put(fn(item))  # type: ignore[arg-type]
        finally:
            inbox.task_done()


def with_queues(images: Iterable[int]) -> list[str]:
    stages = (download, resize, upload)
    # A bounded queue makes a fast stage wait for a slow one instead of piling up work.
    queues: list[queue.Queue[object]] = [queue.Queue(maxsize=10) for _ in stages]
    done: queue.Queue[object] = queue.Queue()
    outboxes = [*queues[1:], done]
    workers = [
        threading.Thread(target=stage_worker, args=(fn, inbox, outbox))
        for fn, inbox, outbox in zip(stages, queues, outboxes, strict=True)
    ]
    for worker in workers:
        worker.start()
    for image in images:
        queues[0].put(image)
    for inbox, worker in zip(queues, workers, strict=True):
        inbox.join()  # every item put so far is processed and passed on ...
        inbox.put(SENTINEL)  # ... so this stage may stop
        worker.join()
    return [done.get() for _ in range(done.qsize())]  # type: ignore[misc]


def with_iter_parallel(images: Iterable[int]) -> tuple[list[str], list[str]]:
    with (
        iter_parallel(download, images) as downloaded,
        iter_parallel(resize, downloaded) as resized,
        iter_parallel(upload, resized) as uploaded,
    ):
        return list(uploaded), [downloaded.mode, resized.mode, uploaded.mode]


def with_pipeline(images: Iterable[int]) -> tuple[list[str], str]:
    stages = pipeline(images).map(download).map(resize).map(upload)
    return stages.run(), str(stages.report())


def main() -> None:
    expected = [f"image{i}-resized-uploaded" for i in range(IMAGES)]
    serial = 3 * IMAGES * STAGE_SECONDS
    print(f"{IMAGES} images through 3 stages of {STAGE_SECONDS * 1e3:.0f} ms: {serial:.2f} s one after another")

    began = time.perf_counter()
    results = with_queues(range(IMAGES))
    print(f"queue.Queue, a thread per stage: {time.perf_counter() - began:.2f} s")
    assert results == expected

    began = time.perf_counter()
    results, modes = with_iter_parallel(range(IMAGES))
    print(f"iter_parallel, stage into stage: {time.perf_counter() - began:.2f} s, stages on {modes}")
    assert results == expected

    began = time.perf_counter()
    results, report = with_pipeline(range(IMAGES))
    print(f"pipeline: {time.perf_counter() - began:.2f} s; where the time went:")
    print(report)
    assert results == expected
    print(f"same results, same order: {results[:2]} ... {results[-1:]}")
    print(
        f"You should see: the queue pipeline in about {(IMAGES + 2) * STAGE_SECONDS:.2f} s (one image per stage "
        f"at a time), iter_parallel and the pipeline faster still with every stage on threads, the same results "
        f"from all three, and the pipeline's report: each stage's mode, workers and seconds."
    )


if __name__ == "__main__":
    main()
