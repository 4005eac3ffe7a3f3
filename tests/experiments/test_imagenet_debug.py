"""`debug=imagenet`: the ImageNet presets end to end on 8 simulated CPU devices, with checkpoint and resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from cnnlab import data
from cnnlab.data import synthetic_imagenet
from tests.conftest import REPO


@pytest.fixture(scope="module")
def synthetic(data_dir):
    """The synthetic set in the session's TFDS data dir, written by the helper command as a user would."""
    cmd = [sys.executable, "-m", "cnnlab.cli.make_synthetic_imagenet", "--data_dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
    assert "train 16, validation 16 images, 1000 classes" in proc.stdout
    return data_dir


def test_synthetic_set_is_imagenet_shaped(synthetic):
    builder = synthetic_imagenet.SyntheticImagenet(data_dir=str(synthetic))
    features = builder.info.features
    assert features["label"].num_classes == 1000 and features["image"].encoding_format == "jpeg"
    source = builder.as_data_source(split="train")
    shapes = {source[i]["image"].shape for i in range(len(source))}
    assert len(shapes) > 8 and all(s[2] == 3 and 48 <= min(s[:2]) and max(s[:2]) <= 160 for s in shapes)
    raw = builder.as_data_source(split="train", decoders={"image": tfds.decode.SkipDecoding()})
    assert raw[0]["image"][:3] == b"\xff\xd8\xff"  # stored as the JPEG bytes themselves


def test_tfds_source_reads_it_at_any_size(synthetic):
    cfg = {"name": "tfds", "data_dir": str(synthetic), "tfds_name": "synthetic_imagenet", "image_size": 40,
           "channels": 3, "num_classes": 1000, "normalize": "zscore",
           "source_splits": {"train": "train", "val": "validation", "test": "validation"}}  # fmt: skip
    dataset = data.load(cfg)
    assert dataset.num_classes == 1000 and dataset.image_shape == (40, 40, 3)
    assert {split: len(s) for split, s in dataset.splits.items()} == {"train": 16, "val": 16, "test": 16}
    image = dataset.splits["train"][3]["image"]
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8 and image.std() > 5


def test_the_helper_refuses_an_empty_split(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.make_synthetic_imagenet", "--data_dir", str(tmp_path),
                           "--train", "0"], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert proc.returncode != 0 and "need at least one example per split" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["imagenet_resnet50", "imagenet_alexnet", "imagenet_vgg16"])
def test_preset_runs_two_steps_on_8_devices_and_resumes(cli, synthetic, tmp_path_factory, monkeypatch, preset):
    """Step 1 and a checkpoint; the same command again resumes there and takes step 2."""
    # The resumed run compiles the same programs: the persistent cache serves them the second time.
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax_cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    run_dir = tmp_path_factory.mktemp(preset)
    args = [f"experiment={preset}", "debug=imagenet", f"hydra.run.dir={run_dir}"]
    cli(*args, "trainer.epochs=1")
    assert (run_dir / "checkpoints" / "1").is_dir()
    first = json.loads((run_dir / "summary.json").read_text())
    assert (first["steps"], first["device_count"]) == (1, 8)

    # The preset's cosine schedule lasts ${trainer.epochs}: more epochs change it, which a resume
    # accepts only when asked (run_dir.py); without the allowance the run directory refuses it.
    if preset == "imagenet_resnet50":  # cosine over ${trainer.epochs}; the others decay in steps of fixed length
        refused = cli(*args, check=False)
        assert refused.returncode == 1 and "schedule.length: 1 -> 2" in refused.stderr
        args.append("checkpoint.allow_changes=[schedule.length]")
    resumed = cli(*args)
    assert "resumed from" in resumed.stdout and "at step 1" in resumed.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["steps"], summary["epochs_run"], summary["device_count"]) == (2, 2, 8)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = [(1, "train"), (1, "val"), (2, "train"), (2, "val"), (2, "test")]
    assert [(r["epoch"], r["split"]) for r in records] == expected
    assert all(np.isfinite(r["loss"]) for r in records if r["split"] == "train")


@pytest.mark.slow
def test_vmap_sweep_on_8_devices_under_pmap_equals_jit(cli, tmp_path, monkeypatch):
    """The vmapped program inside pmap (per-device slices, pmean) ends where jit's ends."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    args = ["sweep=vmap", "sweep.learning_rates=[0.001,0.003]", "data.train_subset=256", "trainer.epochs=1",
            "logger.tensorboard=false"]  # fmt: skip
    for kind in ("jit", "pmap"):
        cli(*args, f"parallel={kind}", f"hydra.run.dir={tmp_path / kind}")
    for variant in ("0", "1"):
        jit, pmap = (json.loads((tmp_path / k / variant / "summary.json").read_text()) for k in ("jit", "pmap"))
        assert jit["device_count"] == pmap["device_count"] == 8
        assert pmap["test_loss"] == pytest.approx(jit["test_loss"], rel=1e-4)
