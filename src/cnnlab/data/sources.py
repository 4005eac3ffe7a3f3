"""Data sets by name: prepared once as TFDS array_record files, then split and normalized.

`load(cfg)` (cfg: the `data` config group) returns a `Dataset`: random-access
train/val/test splits, the class names, the image shape and the
normalization fitted on the train split. The sources:

- `digits`: scikit-learn's 1,797 8x8 digits (embedded; no official test split);
- `fashion_mnist`, `mnist`: the four IDX files in `data.dir` (official test split);
- `image_folder`: `data.root/<class name>/*.{jpg,jpeg,png,bmp}` (no official test split);
- `tfds`: any data set TFDS has prepared in `data.data_dir` (`data.tfds_name`).

Nothing is downloaded. Each source is prepared on first use into
`data.data_dir` and reused; labels and statistics are cached beside it.
Splits small enough (`data.in_memory: auto`, up to 2 GiB) are read into
memory once, so batching only indexes arrays.
"""

import contextlib
import dataclasses
import fcntl
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from cnnlab.data import cache, fingerprint, idx, normalize, records, splits, tfds_prepared
from cnnlab.data.digits import Digits
from cnnlab.data.image_folder import LabeledImageFolder
from cnnlab.data.records import Subset
from cnnlab.data.subsets import restrict

log = logging.getLogger(__name__)

SOURCES = ("digits", "fashion_mnist", "mnist", "image_folder", "tfds")
IDX_BUILDERS = {"fashion_mnist": idx.FashionMnistIdx, "mnist": idx.MnistIdx}
DEFAULT_IDX_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}  # Debian's dataset-fashion-mnist


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set ready to batch."""

    splits: dict[str, Subset]  # "train", "val", "test"
    num_classes: int
    image_shape: tuple[int, int, int]  # (H, W, C)
    normalization: normalize.Normalization
    class_names: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # image_folder: files left out (not images, or corrupt)


def load(cfg: Mapping[str, Any]) -> Dataset:
    """Prepare (first use only), split and normalize the data set that `cfg` (the `data` group) names."""
    if cfg["name"] not in SOURCES:
        raise ValueError(f"unknown data set {cfg['name']!r}; known data sets: {', '.join(SOURCES)}")
    normalize.check_method(cfg["normalize"])
    data_dir = str(cfg["data_dir"]) if "://" in str(cfg["data_dir"]) else os.path.expanduser(cfg["data_dir"])
    size, channels = cfg["image_size"], cfg.get("channels", 1)
    builder = _prepared_builder(cfg, data_dir)
    _, label_key = tfds_prepared.feature_keys(builder)
    class_names = tuple(builder.info.features[label_key].names)
    _check_num_classes(cfg.get("num_classes"), class_names)

    source_splits = _source_splits(builder, cfg.get("source_splits"))
    sizes = {ours: builder.info.splits[theirs].num_examples for ours, theirs in source_splits.items()}
    key = fingerprint.of_json([builder.info.full_name, data_dir, sizes, size, channels])
    cache_dir = cache.directory(data_dir, f"{builder.info.full_name.replace('/', '_')}-{key}")
    official, labels = _read_splits(builder, source_splits, cfg, cache_dir)

    seed = (cfg.get("split") or {}).get("seed", 0)
    assigned = splits.with_train_subset(splits.assign(labels, cfg), labels, cfg.get("train_subset"), seed)
    subsets = {name: Subset(official[split], indices) for name, (split, indices) in assigned.items()}
    normalization = _normalization(subsets["train"], cfg["normalize"], cache_dir, assigned["train"])
    skipped = tuple(str(p) for p in builder.skipped()) if isinstance(builder, LabeledImageFolder) else ()
    dataset = Dataset(subsets, len(class_names), (size, size, channels), normalization, class_names, skipped)
    dataset = restrict(dataset, cfg)  # data.classes, data.train_per_class
    _log_summary(cfg["name"], dataset)
    return dataset


def _prepared_builder(cfg: Mapping[str, Any], data_dir: str) -> tfds.core.DatasetBuilder:
    """The TFDS builder of `cfg["name"]`, prepared on first use (never downloading)."""
    name = cfg["name"]
    if name == "tfds":
        if not cfg.get("tfds_name"):
            raise ValueError("data=tfds needs data.tfds_name, e.g. data.tfds_name=cifar10")
        return tfds_prepared.open_builder(cfg["tfds_name"], data_dir)
    with _one_preparer(data_dir, name):
        builder = _source_builder(cfg, data_dir)
        if not builder.is_prepared():
            log.info("preparing %s in %s (first use only)", builder.info.full_name, data_dir)
        builder.download_and_prepare(file_format="array_record")  # a no-op once prepared
    return builder


def _source_builder(cfg: Mapping[str, Any], data_dir: str) -> tfds.core.DatasetBuilder:
    name = cfg["name"]
    if name == "digits":
        return Digits(image_size=cfg["image_size"], data_dir=data_dir)
    if name in IDX_BUILDERS:
        directory = cfg.get("dir") or DEFAULT_IDX_DIRS.get(name)
        if not directory:
            raise ValueError(f"data={name} needs data.dir, the folder of its four IDX files")
        return IDX_BUILDERS[name](directory=directory, image_size=cfg["image_size"], data_dir=data_dir)
    if not cfg.get("root"):  # image_folder
        raise ValueError("data=image_folder needs data.root, a folder of one sub-folder per class")
    return LabeledImageFolder(root=cfg["root"], image_size=cfg["image_size"], channels=cfg.get("channels", 1),
                              data_dir=data_dir)  # fmt: skip


@contextlib.contextmanager
def _one_preparer(data_dir: str, name: str) -> Iterator[None]:
    """The jobs of a sweep start side by side: one prepares a source, the others wait, then read it.

    The builder is made inside the lock: one made before another process prepared the data would
    not see the splits it wrote. (A remote data_dir, gs://..., has no file lock: prepare it first.)
    """
    if "://" in data_dir:
        yield
        return
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, f".{name}.prepare.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def _read_splits(builder, source_splits: Mapping[str, str], cfg: Mapping[str, Any], cache_dir):
    """({our split: random-access records}, {our split: (N,) labels}) of the data set's splits."""
    size, channels = cfg["image_size"], cfg.get("channels", 1)
    image_key, label_key = tfds_prepared.feature_keys(builder)
    official, labels = {}, {}
    for split, theirs in source_splits.items():
        source = records.Records(
            builder.as_data_source(split=theirs), size=size, channels=channels, image_key=image_key, label_key=label_key
        )
        label_source = tfds_prepared.label_only_source(builder, theirs, image_key)  # large sets: no image parsed
        labels[split] = _cached_labels(cache_dir / f"labels-{split}.npy", label_source, label_key)
        if records.fits_in_memory(len(source), (size, size, channels), cfg.get("in_memory", "auto")):
            source = _in_memory(source, cache_dir, split, labels[split])
        official[split] = source
    return official, labels


SPOT_CHECKS = 64  # records whose labels are compared with a cached copy


def _cached_labels(path, source, label_key: str) -> np.ndarray:
    """Every record's label, from the cache beside the data when it agrees with the records."""
    read = lambda: records.labels(source, label_key)  # noqa: E731
    cached = cache.array(path, read)
    if len(cached) != len(source) or not _agrees(cached, source, label_key):
        log.warning("%s does not match the prepared records (stale or damaged): reading the labels again", path)
        cached = np.asarray(read())
        cache.save_array(path, cached)
    return cached


def _agrees(labels: np.ndarray, source, label_key: str) -> bool:
    """The labels of SPOT_CHECKS records spread over the split, against `labels`: a shifted or
    shuffled copy disagrees almost surely, at the cost of reading a few records."""
    positions = np.unique(np.linspace(0, len(source) - 1, min(SPOT_CHECKS, len(source))).astype(int))
    found = [int(r[label_key]) for r in records.read(source, positions)]
    return bool(np.array_equal(found, labels[positions]))


def _source_splits(builder: tfds.core.DatasetBuilder, mapping: Mapping[str, str | None] | None) -> dict[str, str]:
    """Our split name -> the data set's split name, for the splits it provides."""
    available = list(builder.info.splits)
    if mapping is None:  # our own builders: "train", and "test" where there is an official one
        return {split: split for split in ("train", "val", "test") if split in available}
    chosen = {ours: theirs for ours, theirs in mapping.items() if theirs}
    unknown = [theirs for theirs in chosen.values() if theirs not in available]
    if unknown or "train" not in chosen or set(chosen) - {"train", "val", "test"}:
        raise ValueError(
            f"data.source_splits={dict(mapping)} must map train (and optionally val, test) to splits of "
            f"{builder.info.full_name}: {', '.join(available)}"
        )
    return chosen


def _in_memory(source: records.Records, cache_dir, split: str, labels: np.ndarray) -> records.ArraySource:
    """The whole split as arrays, decoded once and then kept as .npy beside the labels.

    TFDS parses ~10,000 records/s in Python; the .npy copy of a small split
    (Fashion-MNIST: 70 MB) loads in a fraction of a second on every later run.
    """
    images_path = cache_dir / f"images-{split}.npy"
    try:
        images = np.load(images_path)
        if len(images) == len(source):
            return records.ArraySource(images, labels)  # labels: _cached_labels's, checked against the records
    except (OSError, ValueError, EOFError):
        pass
    log.info("reading %d %s records into memory (first use only)", len(source), split)
    arrays = records.read_all(source)
    cache.save_array(images_path, arrays.images)
    return arrays


def _normalization(train: Subset, method: str, cache_dir, assigned_train) -> normalize.Normalization:
    """Statistics of the train split only, cached under the exact training indices."""
    split, indices = assigned_train
    path = cache_dir / f"normalization-{method}-{split}-{fingerprint.of_array(indices)}.json"
    if isinstance(train.source, records.ArraySource):
        fit = lambda: normalize.fit(train.source.images[train.indices], method).as_dict()  # noqa: E731
    else:
        fit = lambda: normalize.fit_source(train, method).as_dict()  # noqa: E731
    return normalize.Normalization.from_dict(cache.json_value(path, fit))


def _check_num_classes(expected: int | None, class_names: Sequence[str]) -> None:
    if expected is not None and expected != len(class_names):
        raise ValueError(
            f"data.num_classes={expected}, but the data set has {len(class_names)} classes "
            f"({', '.join(class_names[:20])}{'...' if len(class_names) > 20 else ''}); set data.num_classes=null"
        )


def _log_summary(name: str, dataset: Dataset) -> None:
    sizes = ", ".join(f"{split} {len(subset)}" for split, subset in dataset.splits.items())
    log.info("%s: %s images of %s, %d classes; normalization shift %s scale %s", name, sizes,
             "x".join(map(str, dataset.image_shape)), dataset.num_classes, dataset.normalization.shift,
             dataset.normalization.scale)  # fmt: skip
    skipped = dataset.skipped
    if skipped:
        log.warning("%s: skipped %d files (not images, unreadable or corrupt):\n  %s", name, len(skipped),
                    "\n  ".join(skipped))  # fmt: skip
