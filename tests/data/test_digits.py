"""The embedded digits: a TFDS builder, split, normalized and batched."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from cnnlab import data
from cnnlab.data import normalize, splits


def test_all_1797_images_are_split_60_20_20(digits):
    sizes = {name: len(split) for name, split in digits.splits.items()}
    assert sizes == {"train": 1077, "val": 360, "test": 360}
    assert digits.num_classes == 10 and digits.image_shape == (32, 32, 1)
    indices = np.concatenate([split.indices for split in digits.splits.values()])
    assert np.array_equal(np.sort(indices), np.arange(1797))  # disjoint and covering


def test_records_are_the_sklearn_digits_resized(digits):
    reference = load_digits()
    test = digits.splits["test"]
    record = test[0]
    assert record["image"].shape == (32, 32, 1) and record["image"].dtype == np.uint8
    assert record["label"] == reference.target[test.indices[0]]
    # Resizing keeps where the ink is: mean 2x2... 4x4 blocks track the 8x8 original.
    blocks = record["image"][..., 0].reshape(8, 4, 8, 4).mean(axis=(1, 3))
    original = reference.images[test.indices[0]] * 255 / 16
    assert np.corrcoef(blocks.ravel(), original.ravel())[0, 1] > 0.9


def test_holdout_is_stratified_and_seeded():
    labels = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    a = splits.holdout(labels, train=0.6, val=0.2, test=0.2, seed=0)
    b = splits.holdout(labels, train=0.6, val=0.2, test=0.2, seed=0)
    c = splits.holdout(labels, train=0.6, val=0.2, test=0.2, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    for name, fraction in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        per_class = np.bincount(labels[a[name]], minlength=10)
        assert np.all(np.abs(per_class - fraction * np.bincount(labels)) <= 1), name


def test_bad_split_fractions_name_the_key():
    with pytest.raises(ValueError, match="data.split fractions"):
        splits.holdout(np.zeros(10), train=0.7, val=0.2, test=0.2, seed=0)


def test_normalization_uses_train_statistics_only(digits):
    train_images = np.stack([r["image"] for r in digits.splits["train"]]).astype(np.float64)
    assert digits.normalization.shift[0] == pytest.approx(train_images.mean(), rel=1e-6)
    assert digits.normalization.scale[0] == pytest.approx(train_images.std(), rel=1e-6)
    minmax = normalize.fit(train_images.astype(np.uint8), "minmax")
    assert minmax(train_images).min() == 0 and minmax(train_images).max() == 1


def test_train_batches_reshuffle_each_epoch_and_repeat_per_seed(digits):
    kwargs = dict(batch_size=32, normalization=digits.normalization)
    epoch0 = data.train_batches(digits.splits["train"], seed=0, epoch=0, **kwargs)
    again = data.train_batches(digits.splits["train"], seed=0, epoch=0, **kwargs)
    epoch1 = data.train_batches(digits.splits["train"], seed=0, epoch=1, **kwargs)
    assert len(epoch0) == 1077 // 32
    assert np.array_equal(epoch0[3]["label"], again[3]["label"])
    assert not np.array_equal(epoch0[3]["label"], epoch1[3]["label"])
    batch = epoch0[0]
    assert batch["image"].shape == (32, 32, 32, 1) and batch["image"].dtype == np.float32
    assert batch["label"].dtype == np.int32


def test_eval_batches_cover_each_example_once(digits):
    batches = data.eval_batches(digits.splits["val"], batch_size=256, normalization=digits.normalization)
    masks = [b["mask"] for b in batches]
    assert [m.shape for m in masks] == [(256,), (256,)]
    assert sum(m.sum() for m in masks) == 360
    labels = np.concatenate([b["label"][b["mask"]] for b in batches])
    assert np.array_equal(labels, [r["label"] for r in digits.splits["val"]])
