"""Images and labels never taken wrong without a word: 16-bit images, nested folders, stale caches, mixed IDX sizes."""

import logging

import numpy as np
import pytest
from PIL import Image

from cnnlab import data
from cnnlab.data import idx, image_folder

from data_testing import write_idx


def test_a_16_bit_image_keeps_its_grey_levels(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.full((12, 12), 30000, np.uint16)).save(path)  # mode I;16
    assert Image.open(path).mode.startswith("I")
    decoded = image_folder.decode(path, 8, 1)
    assert decoded.shape == (8, 8, 1) and np.all(decoded == 117)  # 30000 / 65535 * 255, not clipped to 255
    ramp = tmp_path / "ramp.png"
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(ramp)
    assert image_folder.images.to_array(Image.open(ramp), 3, 1)[0, :, 0].tolist() == [0, 100, 255]  # v * 255/65535

def test_a_folder_inside_a_class_folder_is_listed_as_skipped(tmp_path):
    for name in ("cat", "dog", "cat/sub"):
        (tmp_path / name).mkdir()
    for path in ("cat/a.png", "dog/b.png", "cat/sub/c.png"):
        Image.new("L", (4, 4)).save(tmp_path / path)
    scan = image_folder.scan(tmp_path)
    assert [p.name for p, _ in scan.files] == ["a.png", "b.png"]
    assert scan.not_images == (tmp_path / "cat" / "sub",)  # logged with the skipped files at every load


def test_a_stale_labels_cache_is_read_again(digits_cfg, tmp_path, caplog):
    cfg = {**digits_cfg, "data_dir": str(tmp_path)}
    first = data.load(cfg)
    (cached,) = tmp_path.glob("cnnlab_cache/*/labels-train.npy")
    np.save(cached, np.roll(np.load(cached), 1))  # a shifted copy, of the right length
    with caplog.at_level(logging.WARNING):
        again = data.load(cfg)
    assert "does not match the prepared records" in caplog.text
    for split in ("train", "val", "test"):
        a, b = first.splits[split], again.splits[split]
        assert np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.source.labels[a.indices], b.source.labels[b.indices])


def test_idx_train_and_test_images_of_different_sizes_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n, side in (("train", 40, 20), ("t10k", 20, 28)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, side, side)), 0x803)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
    cfg = {"name": "mnist", "data_dir": str(tmp_path / "tfds"), "dir": str(tmp_path), "image_size": 32,
           "channels": 1, "num_classes": 10, "split": {"seed": 0}, "normalize": "none"}  # fmt: skip
    with pytest.raises(idx.IdxError, match="images of different sizes: train 20x20, test 28x28"):
        data.load(cfg)
