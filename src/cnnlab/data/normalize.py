"""Feature scaling with statistics of the training split only."""

from typing import NamedTuple

import numpy as np


class Normalization(NamedTuple):
    """x -> (x - shift) / scale, per channel; float32 arrays of shape (C,)."""

    shift: np.ndarray
    scale: np.ndarray

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return (image.astype(np.float32) - self.shift) / self.scale


def fit(images: np.ndarray, method: str) -> Normalization:
    """Statistics of `images` (N, H, W, C) for `zscore`, `minmax` or `none`."""
    channels = images.shape[-1]
    pixels = images.reshape(-1, channels).astype(np.float64)
    if method == "zscore":
        shift, scale = pixels.mean(axis=0), pixels.std(axis=0)
    elif method == "minmax":
        shift, scale = pixels.min(axis=0), pixels.max(axis=0) - pixels.min(axis=0)
    elif method == "none":
        shift, scale = np.zeros(channels), np.ones(channels)
    else:
        raise ValueError(f"data.normalize must be one of zscore, minmax, none; got {method!r}")
    scale = np.where(scale > 0, scale, 1.0)  # a constant channel stays finite
    return Normalization(shift.astype(np.float32), scale.astype(np.float32))
