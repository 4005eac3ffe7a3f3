"""Every experiment preset composes, carries its command, and runs one step in debug mode."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cnnlab.train import loop
from tests.conftest import REPO
from tests.data.data_testing import write_idx

EXPERIMENTS = REPO / "experiments"
PRESETS = sorted(str(p.relative_to(EXPERIMENTS).with_suffix("")) for p in EXPERIMENTS.rglob("*.yaml"))
STUDIES = ["optimizer_sweep", "lr_schedules", "regularization", "batchnorm", "degradation", "gd_variants", "kfold"]
IMAGENET = ["imagenet_resnet50", "imagenet_alexnet", "imagenet_vgg16"]
# One quick run per code path (k-fold split, batch-size grid, on-device augmentation, plateau
# transform); every other preset's step runs with the slow tests (~15 s each, mostly compiling).
QUICK = {"kfold", "gd_variants", "regularization/augment", "lr_schedules/plateau"}
WIDE_ON_FASHION_MNIST = {"batchnorm", "degradation"}
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist (CI installs it)


@pytest.fixture(scope="module")
def fashion_mnist_overrides(tmp_path_factory) -> list[str]:
    """Debian's Fashion-MNIST where it is installed; elsewhere generated IDX files of the same
    format (600 training and 200 test 28x28 images, 10 classes), prepared in a data_dir of their
    own, so that a fresh machine runs the presets' debug step too."""
    if (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        return []
    directory = tmp_path_factory.mktemp("generated_fashion_mnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 600), ("t10k", 200)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 0x803)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
    return [f"data.dir={directory}", f"data.data_dir={directory / 'tfds'}"]


def test_the_issue_s_presets_exist():
    assert set(STUDIES + IMAGENET) <= set(PRESETS)
    assert {"regularization/l1", "regularization/early_stopping", "lr_schedules/plateau"} <= set(PRESETS)


def header_commands(name: str) -> list[str]:
    """The cnnlab-train lines of a preset's header comment."""
    header = (EXPERIMENTS / f"{name}.yaml").read_text().split("\ndefaults:")[0]
    return [line for line in header.splitlines() if "cnnlab-train" in line]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_global_and_a_header_gives_its_command(name):
    assert (EXPERIMENTS / f"{name}.yaml").read_text().startswith("# @package _global_\n")
    study = name.split("/")[0]  # a variant (regularization/l1) is run by its study's command
    pattern = rf"experiment=([\w/]+,)*{re.escape(name)}(,|\s|$)"
    assert any(re.search(pattern, line) for line in header_commands(study)), header_commands(study)


@pytest.mark.parametrize("name", STUDIES + IMAGENET)
def test_each_study_has_its_results_page(name):
    page = (EXPERIMENTS / f"{name}.md").read_text()
    assert f"experiment={name}" in page
    if name.startswith("imagenet"):  # recipes for a TPU or GPU, not run on ImageNet here: the debug path is
        assert "debug=imagenet" in page
        return
    assert "not yet run" not in page.lower()
    results = page.split("## Results", 1)[1]  # a committed run: command, hardware, wall time, table, figure
    assert "cnnlab-train -m experiment=" in results and "cnnlab-report" in results and "CPU" in results
    assert re.search(r"wall time:\s+\d+ min", results.lower()), "no wall time"
    assert re.search(r"^\| job \|", results, re.MULTILINE), "no report table"
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", results)
    assert figures and all((EXPERIMENTS / figure).is_file() for figure in figures)
    assert "claim" in page.lower() and "what the run shows" in results.lower()


def test_presets_deltas_reach_the_run_config(compose):
    """Top-level keys (seed, l1, l2) of a preset win over the primary config's defaults."""
    assert compose("experiment=regularization/l1")["l1"] == 1e-4
    assert compose("experiment=regularization/l2")["l2"] == 1e-3
    resnet = compose("experiment=imagenet_resnet50")
    assert resnet["l2"] == 5e-5 and resnet["trainer"]["label_smoothing"] == 0.1
    assert resnet["trainer"]["dtype"] == "bfloat16" and resnet["trainer"]["batch_size"] == 1024
    assert resnet["optimizer"] == {"name": "optax/sgd", "learning_rate": 0.4, "momentum": 0.9, "nesterov": True}
    assert resnet["schedule"]["warmup"] == 5 and resnet["schedule"]["length"] == 90
    assert resnet["augment"]["random_resized_crop"]["enable"] and resnet["augment"]["center_crop"]["fraction"] == 0.875
    for name in ("imagenet_alexnet", "imagenet_vgg16"):
        cfg = compose(f"experiment={name}")
        assert cfg["l2"] == 2.5e-4 and cfg["optimizer"]["learning_rate"] == 0.01 and cfg["schedule"]["factor"] == 0.1
        assert cfg["model"]["dropout_rate"] == 0.5


def test_debug_mode_shrinks_data_epochs_and_width(compose):
    cfg = compose("experiment=degradation", "debug=default")
    assert cfg["trainer"]["epochs"] == 1 and cfg["data"]["train_subset"] == cfg["trainer"]["batch_size"] == 16
    assert cfg["model"]["num_filters"] == 8 and compose("experiment=degradation")["model"]["num_filters"] == 16
    assert "num_filters" not in compose("model=resnet18")["model"]  # only in debug mode
    vgg = compose("experiment=batchnorm", "debug=default")["model"]
    assert (vgg["num_filters"], vgg["fc_features"]) == (8, 32) and compose("model=vgg11")["model"]["num_filters"] == 64
    imagenet = compose("experiment=imagenet_vgg16", "debug=imagenet")
    assert imagenet["data"]["tfds_name"] == "synthetic_imagenet" and imagenet["parallel"]["cpu_devices"] == 8
    assert imagenet["model"]["fc_features"] == 64 and imagenet["data"]["image_size"] == 32


# The ImageNet presets run on 8 devices in test_imagenet_debug.py; the transfer presets start
# from another run's weights or cut classes below debug mode's batch, and tests/transfer runs them.
@pytest.mark.parametrize(
    "name",
    [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow)
     for n in PRESETS if not n.startswith(("imagenet", "transfer_"))],  # fmt: skip
)
def test_preset_runs_one_step_in_debug_mode(compose, tmp_path, name, fashion_mnist_overrides):
    # debug=default keeps the val and test splits whole: VGG-A and the ResNets would spend
    # minutes evaluating Fashion-MNIST's 16,000 images on a CPU, so they evaluate the digits' 720.
    data = ["data=digits"] if name in WIDE_ON_FASHION_MNIST else []
    cfg = compose(f"experiment={name}", "debug=default", *data)
    if cfg["data"]["name"] == "fashion_mnist":
        cfg = compose(f"experiment={name}", "debug=default", *data, *fashion_mnist_overrides)
    summary = loop.run(cfg, tmp_path)
    assert summary["steps"] == 1 and summary["epochs_run"] == 1
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
