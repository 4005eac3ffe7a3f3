"""Source and target tasks cut from one data set: a subset of its classes, a few images each.

The transfer study pretrains on Fashion-MNIST classes 0-4 and transfers to
classes 5-9 with 20, 100 or 1,000 labelled images per class:

    data.classes=[5,6,7,8,9]      # keep these classes, relabelled 0..4 in this order
    data.train_per_class=20       # a seeded choice of 20 training images per class

Val and test keep every image of the chosen classes. The selected splits are
read into memory (these are small-data settings), and the normalization is
fitted again on the new train split. `data.load` applies it, so every run
(a transfer target or not) and its data log line see the same images.
"""

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnlab.data import normalize, records

if TYPE_CHECKING:
    from cnnlab.data.sources import Dataset


def restrict(dataset: "Dataset", cfg: Mapping[str, Any]) -> "Dataset":
    """`dataset` cut to `cfg["classes"]` and `cfg["train_per_class"]` (the `data` group); as is without them."""
    classes, per_class = cfg.get("classes"), cfg.get("train_per_class")
    if not classes and not per_class:
        return dataset
    classes = list(classes or range(dataset.num_classes))
    if len(set(classes)) != len(classes) or not all(0 <= c < dataset.num_classes for c in classes):
        raise ValueError(f"data.classes={classes} must be distinct labels in [0, {dataset.num_classes})")
    relabel = np.full(dataset.num_classes, -1)
    relabel[classes] = np.arange(len(classes))
    seed = (cfg.get("split") or {}).get("seed", 0)
    splits = {}
    for name, subset in dataset.splits.items():
        images, labels = records.read_batch(subset, np.arange(len(subset)))  # (N, H, W, C), (N,)
        keep = np.flatnonzero(relabel[labels] >= 0)
        if name == "train" and per_class:
            keep = _per_class(keep, relabel[labels[keep]], per_class, seed)
        source = records.ArraySource(images[keep], relabel[labels[keep]])
        splits[name] = records.Subset(source, np.arange(len(keep)))
    train = splits["train"].source
    return dataclasses.replace(
        dataset,
        splits=splits,
        num_classes=len(classes),
        class_names=tuple(dataset.class_names[c] for c in classes) if dataset.class_names else (),
        normalization=normalize.fit(train.images, cfg.get("normalize", "zscore")),
    )


def _per_class(positions: np.ndarray, labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` positions of each label, drawn without replacement from `seed`, sorted."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        pool = positions[labels == label]
        if len(pool) < count:
            raise ValueError(f"data.train_per_class={count}, but class {label} has {len(pool)} training images")
        chosen.append(rng.choice(pool, count, replace=False))
    return np.sort(np.concatenate(chosen))
