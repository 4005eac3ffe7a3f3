"""Data sets shared by the data tests: each is prepared once per session in the shared data_dir."""

from pathlib import Path

import numpy as np
import pytest
from data_testing import FOLDER_CLASSES, coloured, write_idx
from PIL import Image

from cnnlab import data

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def digits(digits_cfg):
    return data.load(digits_cfg)


@pytest.fixture(scope="session")
def fashion_mnist_cfg(data_dir) -> dict:
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(
            f"Fashion-MNIST IDX files absent from {FASHION_MNIST_DIR}: "
            "`apt-get install dataset-fashion-mnist` (Debian; CI installs it)"
        )
    return {
        "name": "fashion_mnist", "data_dir": str(data_dir), "dir": str(FASHION_MNIST_DIR), "image_size": 28,
        "channels": 1, "num_classes": 10, "val_fraction": 0.1, "split": {"seed": 0}, "normalize": "zscore",
    }  # fmt: skip


@pytest.fixture(scope="session")
def fashion_mnist(fashion_mnist_cfg):
    return data.load(fashion_mnist_cfg)


@pytest.fixture
def fake_idx_dir(tmp_path) -> Path:
    """A small, valid MNIST-format set: 40 training and 20 test 28x28 images, labels 0..9 cycling."""
    directory = tmp_path / "idx"
    directory.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 0x803)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
    return directory


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    """PNG, JPEG, BMP, RGBA and palette images in 3 class folders, plus a corrupt JPEG and a text file."""
    root = tmp_path_factory.mktemp("image_root")
    rng = np.random.default_rng(0)
    for label, (name, count) in enumerate(FOLDER_CLASSES.items()):
        (root / name).mkdir()
        for i in range(count):
            image = Image.fromarray(coloured(label, rng))
            if i == 0:  # RGBA, left half transparent: composited on white
                alpha = np.full((20, 24), 255, np.uint8)
                alpha[:, :12] = 0
                image.putalpha(Image.fromarray(alpha))
                image.save(root / name / f"{i:02d}_rgba.png")
            elif i == 1:
                image.quantize(16).save(root / name / f"{i:02d}_palette.png")
            elif i == 2:
                image.save(root / name / f"{i:02d}.bmp")
            elif i % 2:
                image.save(root / name / f"{i:02d}.jpg", quality=95)
            else:
                image.save(root / name / f"{i:02d}.png")
    (root / "dog" / "99_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.bytes(200))
    (root / "cat" / "notes.txt").write_text("not an image\n")
    return root


@pytest.fixture(scope="session")
def folder_cfg(data_dir, image_root) -> dict:
    return {
        "name": "image_folder", "data_dir": str(data_dir), "root": str(image_root), "image_size": 16,
        "channels": 3, "num_classes": None, "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0},
        "normalize": "zscore",
    }  # fmt: skip


@pytest.fixture(scope="session")
def folder(folder_cfg):
    return data.load(folder_cfg)
