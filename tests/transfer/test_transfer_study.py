"""The study's smallest setting: LeNet-5 pretrained on Fashion-MNIST classes 0-4, 20 labelled images
per class of classes 5-9. The linear probe reaches the feature extractor's accuracy (within a point)."""

from pathlib import Path

import numpy as np
import pytest

from cnnlab.train import loop

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="module")
def fashion_mnist(compose):
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST IDX files absent from {FASHION_MNIST}: `apt-get install dataset-fashion-mnist`")
    return compose


@pytest.fixture(scope="module")
def pretrained(fashion_mnist, tmp_path_factory):
    """The preset's source task, shortened: 2 epochs on 10,000 training images (about 5,000 of classes 0-4)."""
    run_dir = tmp_path_factory.mktemp("pretrain")
    cfg = fashion_mnist("experiment=transfer_pretrain", "trainer.epochs=2", "data.train_subset=10000",
                        "logger.tensorboard=false")  # fmt: skip
    summary = loop.run(cfg, run_dir)
    assert summary["test_top1"] > 0.7  # 5 classes: chance is 0.2
    return run_dir


@pytest.mark.slow  # about a minute: pretraining on Fashion-MNIST, then 40 epochs of the feature extractor
def test_linear_probe_matches_the_feature_extractor(fashion_mnist, pretrained, tmp_path):
    common = [f"transfer.from_run={pretrained}", "logger.tensorboard=false"]
    extractor = loop.run(fashion_mnist("experiment=transfer_feature_extractor", *common), tmp_path / "fe")
    probe = loop.run(fashion_mnist("experiment=transfer_linear_probe", *common), tmp_path / "lp")
    assert extractor["test_top1"] > 0.7  # 5 classes from 100 images; chance is 0.2
    assert probe["test_top1"] >= extractor["test_top1"] - 0.01
    with np.load(tmp_path / "lp" / "features.npz") as features:  # the same target data as the extractor's
        assert np.bincount(features["train_y"]).tolist() == [20] * 5  # classes 5-9 relabelled 0-4
        assert features["test_x"].shape == (5000, 84)  # every test image of classes 5-9; LeNet-5's F6 features
