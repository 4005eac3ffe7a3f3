"""Helpers for the data tests: small IDX files and class folders of generated images."""

import gzip
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """An IDX file (gzip-compressed): big-endian magic, the sizes, then the uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


# Class folders of different sizes; each class has its own dominant colour
# channel (cat: red, dog: green, zebra: blue), so a record's label can be checked
# against its pixels.
FOLDER_CLASSES = {"cat": 10, "dog": 14, "zebra": 6}


def coloured(label: int, rng, size=(20, 24)) -> np.ndarray:
    """(H, W, 3) uint8 with channel `label` bright and the others dark."""
    image = rng.integers(0, 60, (*size, 3), dtype=np.uint8)
    image[..., label] = rng.integers(190, 256, size, dtype=np.uint8)
    return image


REPO = Path(__file__).resolve().parents[2]
