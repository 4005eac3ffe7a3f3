"""Small derived files (labels, normalization statistics) kept next to the prepared data.

They live in `<data_dir>/cnnlab_cache/` (or `~/.cache/cnnlab/` when the data
dir is remote, e.g. `gs://`), under a key that names the prepared version, so
a changed source never reads another version's statistics. Files are written
to a temporary name and renamed, so a crash or a concurrent writer never
leaves half a file; an unreadable file is simply computed again.
"""

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def directory(data_dir: str, key: str) -> Path:
    """The cache folder of one prepared data set, `key` naming its version."""
    if "://" in data_dir:  # gs://... : keep derived files local
        return Path("~/.cache/cnnlab").expanduser() / key
    return Path(data_dir).expanduser() / "cnnlab_cache" / key


def array(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array saved at `path`, or `compute()` saved there first."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        value = np.asarray(compute())
        save_array(path, value)
        return value


def save_array(path: Path, value: np.ndarray) -> None:
    _write_atomically(path, lambda f: np.save(f, value, allow_pickle=False))


def json_value(path: Path, compute: Callable[[], Any]) -> Any:
    """The JSON value saved at `path`, or `compute()` saved there first."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        value = compute()
        _write_atomically(path, lambda f: f.write(json.dumps(value, indent=1).encode()))
        return value


def _write_atomically(path: Path, write: Callable) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
            write(f)
        os.replace(f.name, path)
    except OSError as e:  # a read-only data dir: correct, just slower next time
        log.warning("could not cache %s: %s", path, e)
