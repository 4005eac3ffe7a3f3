"""Train/val/test index splits, stratified by label and seeded (scikit-learn's splitters).

Where a data set has no official split, train/val/test is a hold-out of
`data.split` fractions (the lecture's 60:20:20). Where it has an official
test split, that is the test set and val is `data.val_fraction` of train.
k-fold cross-validation (`data.kfold.k`, `data.kfold.fold`) keeps the test
set and splits the rest into k stratified folds: fold i is val, so a sweep
over every fold validates on each example exactly once.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

Assignment = dict[str, tuple[str, np.ndarray]]  # split -> (official split it indexes, sorted indices)


def holdout(labels: np.ndarray, *, train: float, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Split `range(len(labels))` into sorted train/val/test index arrays.

    Each class keeps the given proportions (within one example), and the same
    seed always gives the same split.
    """
    total = train + val + test
    if not np.isclose(total, 1.0) or min(train, val, test) < 0:
        raise ValueError(f"data.split fractions must be >= 0 and sum to 1, got train={train} val={val} test={test}")
    indices = np.arange(len(labels))
    rest, test_idx = _stratified(indices, labels, test, seed, "data.split.test")
    # val is a fraction of the whole, so of the rest it is val / (train + val).
    train_idx, val_idx = _stratified(rest, labels[rest], val / (train + val), seed, "data.split.val")
    return {"train": np.sort(train_idx), "val": np.sort(val_idx), "test": np.sort(test_idx)}


def carve(labels: np.ndarray, *, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """A stratified `fraction` of `range(len(labels))` as val, the rest as train."""
    if not 0 <= fraction < 1:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {fraction}")
    train_idx, val_idx = _stratified(np.arange(len(labels)), labels, fraction, seed, "data.val_fraction")
    return {"train": np.sort(train_idx), "val": np.sort(val_idx)}


def kfold(labels: np.ndarray, *, k: int, fold: int, seed: int) -> dict[str, np.ndarray]:
    """Fold `fold` of `k` stratified folds of `range(len(labels))` as val, the others as train."""
    if not isinstance(k, int) or k < 2 or not 0 <= fold < k:
        raise ValueError(f"data.kfold needs k >= 2 and 0 <= fold < k, got k={k} fold={fold}")
    counts = np.bincount(labels)
    smallest = counts[counts > 0].min()
    if smallest < k:
        raise ValueError(f"data.kfold.k={k} is more than the {smallest} examples of the rarest class")
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
    train_idx, val_idx = list(folds)[fold]
    return {"train": np.sort(train_idx), "val": np.sort(val_idx)}


def subset(indices: np.ndarray, labels: np.ndarray, *, size: int, seed: int) -> np.ndarray:
    """A stratified, seeded subset of `size` of `indices` (whose labels are `labels`)."""
    if size >= len(indices):
        return indices
    if size < len(np.unique(labels)):
        raise ValueError(f"data.train_subset={size} is fewer than the {len(np.unique(labels))} classes")
    kept, _ = train_test_split(indices, train_size=size, stratify=labels, random_state=seed)
    return np.sort(kept)


def assign(labels: Mapping[str, np.ndarray], cfg: Mapping[str, Any]) -> Assignment:
    """Our train/val/test from the official splits' labels and the `data` config."""
    split_cfg = cfg.get("split") or {}
    seed = split_cfg.get("seed", 0)
    k = (cfg.get("kfold") or {}).get("k")
    if "test" in labels:
        test = ("test", np.arange(len(labels["test"])))
        pool = np.arange(len(labels["train"]))
        if "val" in labels and not k:  # the data set's own validation split
            return {"train": ("train", pool), "val": ("val", np.arange(len(labels["val"]))), "test": test}
    else:
        fractions = {name: split_cfg[name] for name in ("train", "val", "test")}
        held = holdout(labels["train"], **fractions, seed=seed)
        test = ("train", held["test"])
        pool = np.sort(np.concatenate([held["train"], held["val"]]))
        if not k:
            return {"train": ("train", held["train"]), "val": ("train", held["val"]), "test": test}
    pool_labels = labels["train"][pool]
    if k:
        local = kfold(pool_labels, k=k, fold=cfg["kfold"].get("fold", 0), seed=seed)
    else:
        local = carve(pool_labels, fraction=cfg.get("val_fraction", 0.1), seed=seed)
    return {"train": ("train", pool[local["train"]]), "val": ("train", pool[local["val"]]), "test": test}


def with_train_subset(
    assigned: Assignment, labels: Mapping[str, np.ndarray], size: int | None, seed: int
) -> Assignment:
    """`assigned` with train cut to a stratified subset of `size` (None: unchanged)."""
    if size is None:
        return assigned
    official, indices = assigned["train"]
    return {**assigned, "train": (official, subset(indices, labels[official][indices], size=size, seed=seed))}


def _stratified(indices, labels, fraction, seed, key):
    if fraction == 0:
        return indices, indices[:0]
    try:
        return train_test_split(indices, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as e:  # e.g. a class with a single example, or fewer held out than classes
        raise ValueError(f"{key}={fraction}: cannot split {len(indices)} examples stratified by class: {e}") from e
