"""Stream a large file's lines through concurrency_kit, in bounded memory.

Run it as a script: ``python examples/stream_file.py [FILE]`` (without FILE it writes a
sample of 200,000 lines to a temporary file first). Each line is parsed in whichever mode
auto picks; the file is read only as fast as results are consumed, and the loop stops
at the first line it is looking for without reading the rest.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from concurrency_kit import iter_parallel


def checksum(line: str) -> tuple[str, str]:
    """Some work per line: its first field and a digest of the rest."""
    key, _, rest = line.partition(",")
    return key, hashlib.blake2b(rest.encode(), digest_size=8).hexdigest()


def sample_file() -> Path:
    path = Path(tempfile.gettempdir()) / "concurrency_kit_sample.csv"
    with path.open("w") as out:
        for i in range(200_000):
            out.write(f"row{i},{'x' * (i % 97)}\n")
    return path


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else sample_file()
    with path.open() as lines, iter_parallel(checksum, lines, max_in_flight=10_000) as results:
        print(f"streaming {path} on {results.mode}: {results.reason}")
        for seen, (key, digest) in enumerate(results, 1):
            if key == "row150000":
                print(f"found {key} ({digest}) after {seen} lines; the rest is never read")
                break


if __name__ == "__main__":  # worker processes import this file
    main()
