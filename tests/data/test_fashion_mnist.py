"""Fashion-MNIST from Debian's IDX files (`apt-get install dataset-fashion-mnist`); skipped without them."""

import numpy as np


def official_labels(dataset) -> dict[str, np.ndarray]:
    """Labels of the data set's own train (60,000) and test (10,000) splits, in file order."""
    return {name: dataset.splits[name].source.labels for name in ("train", "test")}


def test_counts_are_60000_and_10000(fashion_mnist):
    labels = official_labels(fashion_mnist)
    assert len(labels["train"]) == 60_000 and len(labels["test"]) == 10_000
    assert len(fashion_mnist.splits["train"]) + len(fashion_mnist.splits["val"]) == 60_000
    assert len(fashion_mnist.splits["test"]) == 10_000
    assert fashion_mnist.image_shape == (28, 28, 1)


def test_each_class_has_6000_training_and_1000_test_images(fashion_mnist):
    labels = official_labels(fashion_mnist)
    assert np.bincount(labels["train"]).tolist() == [6_000] * 10
    assert np.bincount(labels["test"]).tolist() == [1_000] * 10
    # val_fraction=0.1, stratified: 600 of each class.
    val_labels = labels["train"][fashion_mnist.splits["val"].indices]
    assert np.bincount(val_labels).tolist() == [600] * 10


def test_the_first_training_label_is_9_ankle_boot(fashion_mnist):
    first = fashion_mnist.splits["train"].source[0]
    assert first["label"] == 9 and fashion_mnist.class_names[9] == "Ankle boot"
    assert first["image"].shape == (28, 28, 1) and first["image"].max() > 0
