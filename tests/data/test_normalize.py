"""Normalization statistics: numpy's, per channel, over the train split only, and cached."""

import json

import numpy as np

from cnnlab import data
from cnnlab.data import normalize, records


def train_and_all_images(dataset) -> tuple[np.ndarray, np.ndarray]:
    train = dataset.splits["train"]
    every = train.source.images.astype(np.float64)  # (N, H, W, 3): all splits
    return every[train.indices], every


def test_zscore_is_numpy_mean_and_std_of_train_only(folder):
    train, every = train_and_all_images(folder)
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))  # (3,)
    np.testing.assert_allclose(folder.normalization.shift, mean, rtol=1e-6)
    np.testing.assert_allclose(folder.normalization.scale, std, rtol=1e-6)
    assert not np.allclose(folder.normalization.shift, every.mean(axis=(0, 1, 2)), rtol=1e-4)  # val/test left out
    batch = data.eval_batches(folder.splits["train"], batch_size=64, normalization=folder.normalization)[0]
    normalized = batch["image"][batch["mask"]]
    np.testing.assert_allclose(normalized.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(normalized.std(axis=(0, 1, 2)), 1, rtol=1e-5)


def test_minmax_is_numpy_range_of_train_only(folder_cfg):
    dataset = data.load({**folder_cfg, "normalize": "minmax"})
    train, _ = train_and_all_images(dataset)
    low, high = train.min(axis=(0, 1, 2)), train.max(axis=(0, 1, 2))
    np.testing.assert_array_equal(dataset.normalization.shift, low)
    np.testing.assert_array_equal(dataset.normalization.scale, high - low)


def test_statistics_are_cached_beside_the_data(folder_cfg, data_dir, image_root, folder):
    pattern = f"cnnlab_cache/labeled_image_folder_{image_root.name}-16px-3ch-*/normalization-zscore-*.json"
    [cached] = data_dir.glob(pattern)
    original = cached.read_text()
    try:
        cached.write_text(json.dumps({"shift": [1.0, 2.0, 3.0], "scale": [4.0, 5.0, 6.0]}))
        assert data.load(folder_cfg).normalization.shift.tolist() == [1.0, 2.0, 3.0]  # read, not recomputed
    finally:
        cached.write_text(original)


def test_normalization_is_json_able_for_checkpoints(folder):
    restored = data.Normalization.from_dict(json.loads(json.dumps(folder.normalization.as_dict())))
    assert all(np.array_equal(a, b) and a.dtype == np.float32 for a, b in zip(restored, folder.normalization))


def test_statistics_streamed_from_disk_equal_numpy(folder_cfg):
    lazy = data.load({**folder_cfg, "in_memory": False})  # train is read in chunks of records from TFDS
    assert not isinstance(lazy.splits["train"].source, records.ArraySource)
    train, _ = train_and_all_images(data.load(folder_cfg))
    zscore = normalize.fit_source(lazy.splits["train"], "zscore")
    minmax = normalize.fit_source(lazy.splits["train"], "minmax")
    np.testing.assert_allclose(zscore.shift, train.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(zscore.scale, train.std(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(minmax.shift, train.min(axis=(0, 1, 2)))
