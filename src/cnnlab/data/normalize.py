"""Feature scaling with statistics of the training split only.

`zscore` subtracts the per-channel mean and divides by the per-channel
standard deviation; `minmax` maps the per-channel range to [0, 1]; `none`
keeps the 0..255 pixel values (as float32). The statistics are exact sums
over the training images (a seeded sample of MAX_IMAGES for larger sets),
accumulated chunk by chunk so that no split is ever held twice in memory.
"""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cnnlab.data import records

METHODS = ("zscore", "minmax", "none")
MAX_IMAGES = 100_000  # beyond this many training images, statistics come from a seeded sample
CHUNK_VALUES = 1 << 22  # pixel values per chunk: bounds the float64 scratch memory at ~64 MB


class Normalization(NamedTuple):
    """x -> (x - shift) / scale, per channel; float32 arrays of shape (C,)."""

    shift: np.ndarray
    scale: np.ndarray

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return (image.astype(np.float32) - self.shift) / self.scale

    def invert(self, image: np.ndarray) -> np.ndarray:
        """Back to pixel values (0..255), e.g. to show an augmented image."""
        return np.asarray(image, np.float32) * self.scale + self.shift

    def as_dict(self) -> dict[str, list[float]]:
        """JSON-able, to store with a run and its checkpoints."""
        return {"shift": self.shift.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(np.asarray(d["shift"], np.float32), np.asarray(d["scale"], np.float32))


class _Moments:
    """Per-channel count, sum, sum of squares, min and max of pixel values."""

    def __init__(self, channels: int):
        self.count = 0
        self.sum, self.sum_sq = np.zeros(channels), np.zeros(channels)  # float64: exact for uint8 sums < 2**53
        self.min, self.max = np.full(channels, np.inf), np.full(channels, -np.inf)

    def add(self, images: np.ndarray) -> None:
        pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)  # (N*H*W, C)
        self.count += len(pixels)
        self.sum += pixels.sum(axis=0)
        self.sum_sq += np.square(pixels).sum(axis=0)
        self.min, self.max = np.minimum(self.min, pixels.min(axis=0)), np.maximum(self.max, pixels.max(axis=0))

    def normalization(self, method: str) -> Normalization:
        if method == "zscore":
            mean = self.sum / self.count
            shift, scale = mean, np.sqrt(np.maximum(self.sum_sq / self.count - mean**2, 0.0))
        elif method == "minmax":
            shift, scale = self.min, self.max - self.min
        else:
            shift, scale = np.zeros_like(self.sum), np.ones_like(self.sum)
        scale = np.where(scale > 0, scale, 1.0)  # a constant channel stays finite
        return Normalization(shift.astype(np.float32), scale.astype(np.float32))


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"data.normalize must be one of {', '.join(METHODS)}; got {method!r}")


def fit(images: np.ndarray, method: str) -> Normalization:
    """Statistics of `images` (N, H, W, C) for `zscore`, `minmax` or `none`."""
    check_method(method)
    moments = _Moments(images.shape[-1])
    per_chunk = max(1, CHUNK_VALUES // max(1, int(np.prod(images.shape[1:]))))
    for start in range(0, len(images), per_chunk):
        moments.add(images[start : start + per_chunk])
    return moments.normalization(method)


def fit_source(source: Sequence, method: str, *, seed: int = 0) -> Normalization:
    """Statistics over the images of a random-access `source` of records, read in chunks."""
    check_method(method)
    positions = np.arange(len(source))
    if len(positions) > MAX_IMAGES:
        positions = np.sort(np.random.default_rng(seed).choice(positions, MAX_IMAGES, replace=False))
    first = source[int(positions[0])]["image"]  # (H, W, C)
    moments = _Moments(first.shape[-1])
    if method == "none":  # nothing to measure
        return moments.normalization(method)
    per_chunk = max(1, CHUNK_VALUES // first.size)
    for start in range(0, len(positions), per_chunk):
        chunk = records.read(source, positions[start : start + per_chunk].tolist())
        moments.add(np.stack([r["image"] for r in chunk]))
    return moments.normalization(method)
