"""Splits: disjoint and covering, stratified within one example per class, seeded; k-fold partitions."""

import numpy as np
import pytest

from cnnlab.data import splits

# 10 imbalanced classes, 1,000 examples.
LABELS = np.repeat(np.arange(10), [60, 70, 80, 90, 100, 110, 120, 130, 140, 100])
HOLDOUT = {"split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0}}
OFFICIAL = {"split": {"seed": 0}, "val_fraction": 0.1}
OFFICIAL_TEST = np.repeat(np.arange(10), 30)
SOURCES = [{"train": LABELS}, {"train": LABELS, "test": OFFICIAL_TEST}]  # without and with an official test split


def within_one_per_class(indices, labels, fraction) -> bool:
    return bool(np.all(np.abs(np.bincount(labels[indices], minlength=10) - fraction * np.bincount(labels)) <= 1))


@pytest.mark.parametrize("labels", SOURCES, ids=["holdout", "official_test"])
def test_splits_are_disjoint_cover_and_are_stratified(labels):
    cfg = HOLDOUT if "test" not in labels else OFFICIAL
    assigned = splits.assign(labels, cfg)
    from_train = [indices for split, indices in assigned.values() if split == "train"]
    joined = np.concatenate(from_train)
    assert len(np.unique(joined)) == len(joined)  # disjoint
    assert np.array_equal(np.sort(joined), np.arange(len(LABELS)))  # covering
    if "test" in labels:
        assert assigned["test"][0] == "test" and np.array_equal(assigned["test"][1], np.arange(300))
        fractions = {"train": 0.9, "val": 0.1}
    else:
        fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    for name, fraction in fractions.items():
        assert within_one_per_class(assigned[name][1], LABELS, fraction), name


def test_the_same_seed_gives_the_same_split():
    a, b = splits.assign({"train": LABELS}, HOLDOUT), splits.assign({"train": LABELS}, HOLDOUT)
    c = splits.assign({"train": LABELS}, {"split": {**HOLDOUT["split"], "seed": 1}})
    assert all(np.array_equal(a[k][1], b[k][1]) for k in a)
    assert not np.array_equal(a["val"][1], c["val"][1])


@pytest.mark.parametrize("labels", SOURCES, ids=["holdout", "official_test"])
def test_kfold_validation_folds_partition_the_data(labels):
    cfg = HOLDOUT if "test" not in labels else OFFICIAL
    k = 5
    folds = [splits.assign(labels, {**cfg, "kfold": {"k": k, "fold": i}}) for i in range(k)]
    test = folds[0]["test"][1]
    pool = np.setdiff1d(np.arange(len(LABELS)), test if folds[0]["test"][0] == "train" else [])
    vals = np.concatenate([f["val"][1] for f in folds])
    assert np.array_equal(np.sort(vals), pool)  # every example of the pool is validated exactly once
    for f in folds:
        assert np.array_equal(f["test"][1], test)  # the test set never moves
        assert np.array_equal(np.sort(np.concatenate([f["train"][1], f["val"][1]])), pool)
        assert within_one_per_class(f["val"][1], LABELS, len(f["val"][1]) / len(LABELS))


def test_train_subset_is_stratified_and_inside_train():
    assigned = splits.assign({"train": LABELS}, HOLDOUT)
    cut = splits.with_train_subset(assigned, {"train": LABELS}, 100, seed=0)
    kept = cut["train"][1]
    assert len(kept) == 100 and np.isin(kept, assigned["train"][1]).all()
    assert within_one_per_class(kept, LABELS, 0.1)
    assert np.array_equal(cut["val"][1], assigned["val"][1])
