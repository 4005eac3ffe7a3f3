"""image_folder on generated PNG, JPEG and BMP files: classes, conversion, skipped files, versions."""

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from cnnlab import data
from cnnlab.data.records import ArraySource

from data_testing import FOLDER_CLASSES, coloured


def official(dataset) -> ArraySource:
    """The prepared `train` split (every decodable image, in folder then file-name order)."""
    return dataset.splits["train"].source


def test_classes_come_from_sorted_folders_with_their_sizes(folder):
    assert folder.class_names == ("cat", "dog", "zebra") and folder.num_classes == 3
    labels = official(folder).labels
    # dog loses its corrupt JPEG; every other image, whatever its format, is kept.
    assert np.bincount(labels).tolist() == list(FOLDER_CLASSES.values())
    assert sum(len(split) for split in folder.splits.values()) == sum(FOLDER_CLASSES.values())


def test_images_are_resized_converted_and_keep_their_labels(folder):
    assert folder.image_shape == (16, 16, 3)
    source = official(folder)
    assert source.images.shape == (30, 16, 16, 3) and source.images.dtype == np.uint8
    # Each class's colour dominates its images: labels follow the folders.
    dominant = source.images.reshape(30, -1, 3).mean(axis=1).argmax(axis=1)
    assert np.array_equal(dominant, source.labels)
    rgba = source.images[0]  # cat/00_rgba.png: its transparent left half became white
    assert np.all(rgba[:, :6] == 255) and not np.all(rgba[:, 10:] == 255)


def test_corrupt_and_non_image_files_are_skipped_and_listed(folder_cfg, image_root, caplog):
    with caplog.at_level(logging.WARNING, logger="cnnlab.data.sources"):
        dataset = data.load(folder_cfg)
    expected = [str(image_root / "cat" / "notes.txt"), str(image_root / "dog" / "99_broken.jpg")]
    assert list(dataset.skipped) == expected
    assert "skipped 2 files" in caplog.text and all(path in caplog.text for path in expected)


def test_grayscale_conversion(folder_cfg):
    grey = data.load({**folder_cfg, "channels": 1})
    assert grey.image_shape == (16, 16, 1) and official(grey).images.shape == (30, 16, 16, 1)


def test_empty_class_folder_is_an_error(tmp_path, folder_cfg):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.fromarray(coloured(0, np.random.default_rng(0))).save(tmp_path / "a" / "x.png")
    (tmp_path / "b" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=f"class folder {tmp_path / 'b'} has no"):
        data.load({**folder_cfg, "root": str(tmp_path)})


def test_fewer_than_two_classes_is_an_error(tmp_path, folder_cfg):
    (tmp_path / "only").mkdir()
    Image.fromarray(coloured(0, np.random.default_rng(0))).save(tmp_path / "only" / "x.png")
    with pytest.raises(ValueError, match="has 1 class folder.*need at least 2"):
        data.load({**folder_cfg, "root": str(tmp_path)})


def test_a_changed_source_prepares_a_new_version(tmp_path, image_root, folder_cfg, data_dir):
    root = tmp_path / "copy"
    shutil.copytree(image_root, root)
    cfg = {**folder_cfg, "root": str(root)}
    before = data.load(cfg)
    Image.fromarray(coloured(2, np.random.default_rng(1))).save(root / "zebra" / "50_new.png")
    after = data.load(cfg)
    resized = data.load({**cfg, "image_size": 8})
    assert len(official(after)) == len(official(before)) + 1
    assert np.bincount(official(after).labels).tolist() == [10, 14, 7]
    assert resized.image_shape == (8, 8, 3)
    versions = sorted(p.parent.name for p in data_dir.glob("labeled_image_folder/copy-*/1.0.0"))
    assert len(versions) == 3, versions  # one prepared version per source state and size
