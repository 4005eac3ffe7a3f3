"""Data sets by name: prepared once as TFDS array_record files, then split.

`load(cfg)` returns a `Dataset`: random-access train/val/test splits (read
lazily with `tfds.data_source`), the number of classes, the image shape and
the normalization fitted on the train split.
"""

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from cnnlab.data import normalize, splits
from cnnlab.data.digits import Digits

SOURCES = ("digits",)


class Subset(Sequence):
    """The records of `source` at `indices`, as a random-access data source."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.source[int(self.indices[i])]

    def __repr__(self) -> str:
        return f"Subset({self.source!r}, {len(self)} records)"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set ready to batch."""

    splits: dict[str, Subset]  # "train", "val", "test"
    num_classes: int
    image_shape: tuple[int, int, int]  # (H, W, C)
    normalization: normalize.Normalization


def load(cfg: Mapping[str, Any]) -> Dataset:
    """Prepare (first use only) and split the data set that `cfg` (the `data` group) names."""
    if cfg["name"] not in SOURCES:
        raise ValueError(f"unknown data set {cfg['name']!r}; known data sets: {', '.join(SOURCES)}")
    data_dir = os.path.expanduser(cfg["data_dir"])
    builder = Digits(image_size=cfg["image_size"], data_dir=data_dir)
    builder.download_and_prepare(file_format="array_record")  # a no-op once prepared
    source = tfds.data_source(f"digits/{builder.builder_config.name}", split="train", data_dir=data_dir)

    labels = np.array([record["label"] for record in source], dtype=np.int64)
    split_cfg = cfg["split"]
    indices = splits.holdout(
        labels, train=split_cfg["train"], val=split_cfg["val"], test=split_cfg["test"], seed=split_cfg["seed"]
    )
    subsets = {name: Subset(source, idx) for name, idx in indices.items()}
    train_images = np.stack([record["image"] for record in subsets["train"]])
    return Dataset(
        splits=subsets,
        num_classes=builder.info.features["label"].num_classes,
        image_shape=tuple(builder.info.features["image"].shape),
        normalization=normalize.fit(train_images, cfg["normalize"]),
    )
