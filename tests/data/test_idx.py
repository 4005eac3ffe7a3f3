"""IDX files (MNIST format): read exactly, and a corrupt file is named without leaving a prepared set."""

import gzip

import numpy as np
import pytest

from cnnlab import data
from cnnlab.data import idx


def mnist_cfg(directory, data_dir) -> dict:
    return {"name": "mnist", "data_dir": str(data_dir), "dir": str(directory), "image_size": 32, "channels": 1,
            "num_classes": 10, "val_fraction": 0.25, "split": {"seed": 0}, "normalize": "none"}  # fmt: skip


def test_idx_files_are_read_exactly_and_centred_at_32(fake_idx_dir, tmp_path):
    images = idx.read(fake_idx_dir / "train-images-idx3-ubyte.gz", magic=idx.IMAGES_MAGIC)  # (40, 28, 28)
    dataset = data.load(mnist_cfg(fake_idx_dir, tmp_path / "tfds"))
    train = dataset.splits["train"].source  # the official 40 training images, in file order
    assert len(train) == 40 and len(dataset.splits["test"]) == 20
    assert np.array_equal(train.images[:, 2:30, 2:30, 0], images)  # LeNet-5's 32x32 field, 2-pixel border
    assert np.all(train.images[:, :2] == 0) and np.array_equal(train.labels, np.arange(40) % 10)


def truncate(path):
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))


def wrong_magic(path):
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[3] = 0x03  # the images' magic in a labels file
    path.write_bytes(gzip.compress(bytes(raw)))


def not_gzip(path):
    path.write_bytes(b"<html>404 Not Found</html>")


def fewer_labels(path):
    from data_testing import write_idx

    write_idx(path, np.arange(39) % 10, idx.LABELS_MAGIC)


@pytest.mark.parametrize(
    ("corrupt", "name", "message"),
    [
        (truncate, "train-images-idx3-ubyte.gz", "bytes, but the header"),
        (wrong_magic, "t10k-labels-idx1-ubyte.gz", "magic number 0x00000803, expected 0x00000801"),
        (not_gzip, "train-labels-idx1-ubyte.gz", "cannot decompress"),
        (fewer_labels, "train-labels-idx1-ubyte.gz", "has 40 images but .* has 39 labels"),
    ],
)
def test_a_corrupt_idx_file_is_named_and_nothing_is_left_prepared(fake_idx_dir, tmp_path, corrupt, name, message):
    corrupt(fake_idx_dir / name)
    data_dir = tmp_path / "tfds"
    with pytest.raises(idx.IdxError, match=message) as error:
        data.load(mnist_cfg(fake_idx_dir, data_dir))
    assert str(fake_idx_dir / name) in str(error.value)
    assert not list(data_dir.glob("mnist_idx/*/1.0.0")), "a prepared version was left behind"
    assert not list(data_dir.rglob("*incomplete*")), "a half-prepared directory was left behind"


def test_missing_files_say_where_to_get_them(tmp_path):
    expected = "train-images-idx3-ubyte.gz not found.*apt-get install dataset-fashion-mnist"
    with pytest.raises(idx.IdxError, match=expected):
        data.load({**mnist_cfg(tmp_path, tmp_path / "tfds"), "name": "fashion_mnist"})
