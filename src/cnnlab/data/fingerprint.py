"""Short fingerprints of source files, so that a changed source prepares a new version.

A prepared TFDS data set is found again by its builder config name; putting
a fingerprint of the source files in that name means new, removed, resized
or rewritten files (or another image size) give another name, hence a fresh
preparation, and never a stale read.
"""

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def of_files(paths: Iterable[Path], *, root: Path, extra: object = None) -> str:
    """10 hex digits over each file's path relative to `root`, size and modification time."""
    entries = []
    for path in sorted(paths):
        stat = path.stat()
        entries.append([path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    return of_json({"files": entries, "extra": extra})


def of_json(value: object) -> str:
    """10 hex digits of the SHA-256 of `value` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def of_array(array) -> str:
    """10 hex digits of an index array's values, e.g. to key statistics by the split they cover."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()[:10]
