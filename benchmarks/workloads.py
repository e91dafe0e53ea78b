"""The workloads: module-level task functions (they pickle by reference) and their items.

Every workload is rebuilt from its name and size alone, so that a fresh interpreter (a
cold measurement) runs exactly the items the warm measurement ran.
"""

from __future__ import annotations

import ast
import json
import select
import sysconfig
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, final

import attrs

from concurrency_kit import tasks

__all__ = [
    "SPIN_1MS",
    "WORKLOADS",
    "Profile",
    "Workload",
    "checksum_head",
    "get_workload",
    "json_round_trip",
    "parse_source",
    "spin",
    "wait_then_spin",
]

#: A run profile: how big the workloads are.
Profile = Literal["full", "quick", "smoke"]

#: Iterations of :func:`spin` that take about 1 ms on the 2-core development machine
#: (CPython 3.11). Fixed, so that the work is the same on every run, only its time varies.
SPIN_1MS = 11_000
#: Bytes per item of the pickling-heavy workload.
BLOB_BYTES = 1_000_000
#: How much of a blob :func:`checksum_head` reads.
HEAD_BYTES = 4096


def spin(count: int) -> int:
    """Pure-Python arithmetic, ``count`` iterations: CPU work that holds the GIL."""
    total = 0
    for i in range(count):
        total += i * i % 7
    return total


def wait_then_spin(item: int) -> int:
    """Wait 20 ms in ``select`` (the GIL released), then about 2 ms of bytecode."""
    select.select([], [], [], 0.02)
    return spin(2 * SPIN_1MS) + item


def checksum_head(blob: bytes) -> int:
    """CRC-32 of the first 4 KiB of ``blob``: light work on a heavy argument."""
    return zlib.crc32(blob[:HEAD_BYTES])


def parse_source(source: str) -> int:
    """``ast.parse`` a module's source (C code holding the GIL, in calls of mixed length); its statements."""
    return len(ast.parse(source).body)


def json_round_trip(document: str) -> int:
    """Load a JSON document and dump it again (C code holding the GIL); the length written."""
    return len(json.dumps(json.loads(document), sort_keys=True))


def _stdlib_sources(size: int) -> list[str]:
    """The sources of the first ``size`` standard-library modules (by path), as they are on this interpreter."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(p for p in root.rglob("*.py") if "test" not in p.parts and "site-packages" not in p.parts)
    sources: list[str] = []
    for path in paths:
        try:
            source = path.read_text(encoding="utf-8")
            compile(source, str(path), "exec", flags=ast.PyCF_ONLY_AST)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a file this interpreter does not parse (lib2to3's fixtures, encodings)
        sources.append(source)
        if len(sources) == size:
            break
    return sources


def _json_documents(size: int) -> list[str]:
    """``size`` JSON documents of uneven size: a record list of 10 to ~10,000 records, by a fixed rule."""
    documents = []
    for i in range(size):
        records = 10 + (i * 7919) % 97 * (1 + (i % 5) ** 2) * 4  # mixed, reproducible
        rows = [
            {"id": j, "name": f"row {j}", "tags": ["a", "b", str(j % 13)], "score": j * 0.5} for j in range(records)
        ]
        documents.append(json.dumps({"rows": rows, "page": i}))
    return documents


def _gcd_pairs(size: int) -> list[tuple[int, int]]:
    return list(tasks.GCD_PAIRS[:size])


def _seed_numbers(size: int) -> list[int]:
    return list(tasks.SEED_NUMBERS[:size])


def _indices(size: int) -> list[int]:
    return list(range(size))


def _spin_counts(size: int) -> list[int]:
    return [SPIN_1MS] * size


def _passwords(size: int) -> list[str]:
    return [f"password-{i}" for i in range(size)]


def _blobs(size: int) -> list[bytes]:
    # Distinct objects with distinct contents: a chunk of equal objects would pickle once.
    return [i.to_bytes(4, "little") * (BLOB_BYTES // 4) for i in range(size)]


def _uneven(size: int) -> list[int]:
    """Many 1 ms items, then a few 100 ms ones at the end (1 in 50): a straggling tail."""
    long_items = max(1, size // 50)
    return [SPIN_1MS] * (size - long_items) + [100 * SPIN_1MS] * long_items


@final
@attrs.frozen
class Workload:
    """A task, how to build its items, and its size in each profile."""

    name: str
    fn: Callable[[Any], Any]
    build: Callable[[int], Sequence[Any]]
    sizes: dict[str, int]
    description: str

    def size(self, profile: Profile) -> int:
        """Items in ``profile`` (the full size when the profile has none of its own)."""
        return self.sizes.get(profile, self.sizes["full"])

    def items(self, size: int) -> Sequence[Any]:
        """The items for a run of ``size``."""
        return self.build(size)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "factorize_x4",
        tasks.factorize,
        _seed_numbers,
        {"full": 4},
        "tasks.factorize over SEED_NUMBERS: ~0.1 s of bytecode each (GIL held)",
    ),
    Workload(
        "syscall_x5",
        tasks.slow_systemcall,
        _indices,
        {"full": 5},
        "tasks.slow_systemcall: 0.1 s in select, GIL released",
    ),
    Workload(
        "syscall_x50",
        tasks.slow_systemcall,
        _indices,
        {"full": 50},
        "tasks.slow_systemcall: 0.1 s in select, GIL released",
    ),
    Workload(
        "square_x20000",
        tasks.square,
        _indices,
        {"full": 20_000, "smoke": 200},
        "tasks.square: far too little work for any pool",
    ),
    Workload(
        "cpu1ms_x2000",
        spin,
        _spin_counts,
        {"full": 2000, "smoke": 8},
        "spin(SPIN_1MS): ~1 ms of bytecode each (GIL held)",
    ),
    Workload(
        "derive_key_x16",
        tasks.derive_key,
        _passwords,
        {"full": 16},
        "tasks.derive_key: PBKDF2, 100,000 rounds each, C code with the GIL released",
    ),
    Workload(
        "wait_cpu_x40",
        wait_then_spin,
        _indices,
        {"full": 40},
        "wait_then_spin: 20 ms in select, then ~2 ms of bytecode",
    ),
    Workload(
        "bytes1mb_x200",
        checksum_head,
        _blobs,
        {"full": 200, "smoke": 4},
        "checksum_head over 200 distinct 1 MB bytes: pickling dominates",
    ),
    Workload(
        "gcd_x8",
        tasks.gcd,
        _gcd_pairs,
        {"full": 8},
        "tasks.gcd over GCD_PAIRS: a naive downward search, 30-250 ms of bytecode each (GIL held)",
    ),
    Workload(
        "ast_parse_x400",
        parse_source,
        _stdlib_sources,
        {"full": 400, "smoke": 8},
        "ast.parse of 400 standard-library modules: C code holding the GIL, items of mixed length",
    ),
    Workload(
        "json_x200",
        json_round_trip,
        _json_documents,
        {"full": 200, "smoke": 8},
        "json loads + dumps of 200 documents of 10 to ~10,000 records: C code holding the GIL",
    ),
    Workload(
        "uneven_x200",
        spin,
        _uneven,
        {"full": 200},
        "spin: 196 items of ~1 ms, then 4 of ~100 ms (a straggling tail)",
    ),
)

#: Workloads the smoke profile runs (tiny sizes).
SMOKE_WORKLOADS = ("square_x20000", "cpu1ms_x2000")


def get_workload(name: str) -> Workload:
    """The workload called ``name``.

    Raises:
        KeyError: no workload has that name.
    """
    for workload in WORKLOADS:
        if workload.name == name:
            return workload
    raise KeyError(f"no workload {name!r}; known: {', '.join(w.name for w in WORKLOADS)}")
