"""Hold-out splits of example indices, stratified by label and seeded."""

import numpy as np
from sklearn.model_selection import train_test_split


def holdout(labels: np.ndarray, *, train: float, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Split `range(len(labels))` into sorted train/val/test index arrays.

    Each class keeps the given proportions (within one example), and the same
    seed always gives the same split.
    """
    total = train + val + test
    if not np.isclose(total, 1.0) or min(train, val, test) < 0:
        raise ValueError(f"data.split fractions must be >= 0 and sum to 1, got train={train} val={val} test={test}")
    indices = np.arange(len(labels))
    rest, test_idx = _stratified(indices, labels, test, seed)
    # val is a fraction of the whole, so of the rest it is val / (train + val).
    train_idx, val_idx = _stratified(rest, labels[rest], val / (train + val), seed)
    return {"train": np.sort(train_idx), "val": np.sort(val_idx), "test": np.sort(test_idx)}


def _stratified(indices, labels, fraction, seed):
    if fraction == 0:
        return indices, indices[:0]
    return train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
