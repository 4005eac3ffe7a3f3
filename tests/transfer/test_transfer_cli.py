"""End to end from the command line: a short cnnlab-train run, then a transfer preset that reads it;
and cnnlab-convert-weights."""

import json
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import torchvision_layouts as tv

from cnnlab import transfer
from cnnlab.transfer import checkpoints

SUMMARY_KEYS = {
    "test_top1", "test_top5", "test_loss", "best_val_top1", "best_epoch", "epochs_run",
    "stopped_early", "steps", "wall_s", "params", "device_count",
}  # fmt: skip
DIGITS_TARGET = ["data=digits", "data.classes=null", "data.train_per_class=null", "trainer.batch_size=32"]


@pytest.fixture(scope="module")
def pretrained_run(cli, tmp_path_factory):
    """LeNet-5 trained for one epoch on the digits: the run directory that transfer.from_run names."""
    run_dir = tmp_path_factory.mktemp("pretrained")
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=1", "logger.tensorboard=false")
    return run_dir


def saved_params(run_dir, step: int) -> dict:
    return ocp.StandardCheckpointer().restore(run_dir / "checkpoints" / str(step) / "state")["params"]


def test_finetune_preset_runs_from_a_run_directory(cli, pretrained_run, tmp_path):
    """One epoch on the frozen base, one fine-tuning epoch at 0.1 x the rate, as the logs and checkpoints show."""
    proc = cli("experiment=transfer_finetune", *DIGITS_TARGET, f"transfer.from_run={pretrained_run}",
               "trainer.epochs=1", "transfer.finetune.epochs=1", "trainer.early_stopping.patience=null",
               f"hydra.run.dir={tmp_path}", "logger.tensorboard=false")  # fmt: skip
    assert "transfer feature_extractor from" in proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS and summary["epochs_run"] == 2 and summary["steps"] == 2 * (1077 // 32)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rates = {(r["epoch"], r["split"]): r["lr"] for r in records}
    # The preset's head-training rate 0.01, then lr_scale 0.1 of it.
    assert rates[(1, "train")] == pytest.approx(1e-2) and rates[(2, "train")] == pytest.approx(1e-3)
    assert rates[(2, "val")] == pytest.approx(1e-3) and rates[(2, "test")] == pytest.approx(1e-3)

    source = saved_params(pretrained_run, 1077 // 32)
    after_head, after_finetune = saved_params(tmp_path, 1077 // 32), saved_params(tmp_path, 2 * (1077 // 32))
    for layer in ("C1", "C3", "C5", "F6"):  # frozen in phase 1, trained in phase 2
        np.testing.assert_array_equal(after_head[layer]["kernel"], source[layer]["kernel"])
        assert not np.array_equal(after_finetune[layer]["kernel"], source[layer]["kernel"])
    assert not np.array_equal(after_head["output"]["kernel"], after_finetune["output"]["kernel"])


def test_linear_probe_preset_writes_a_summary(cli, pretrained_run, tmp_path):
    cli("experiment=transfer_linear_probe", *DIGITS_TARGET, f"transfer.from_run={pretrained_run}",
        f"hydra.run.dir={tmp_path}")  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS and summary["params"] == 84 * 10 + 10  # F6's 84 features -> 10 classes
    assert summary["test_top1"] > 0.8  # one epoch of LeNet-5 already gives usable features
    with np.load(tmp_path / "features.npz") as features:
        assert features["train_x"].shape == (1077, 84) and features["test_x"].shape == (360, 84)


def convert(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cnnlab.cli.convert_weights", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_convert_weights_writes_a_checkpoint_that_from_run_reads(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="writing test files needs safetensors")
    sd = tv.random_state_dict(tv.squeezenet("1_1", num_classes=6))
    safetensors_numpy.save_file(sd, str(tmp_path / "squeezenet.safetensors"))
    out = tmp_path / "pretrained"

    proc = convert(str(tmp_path / "squeezenet.safetensors"), "--model", "squeezenet1_1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "squeezenet1_1, 6 classes, 725,574 parameters" in proc.stdout
    from cnnlab import models

    read = checkpoints.read(out, model=models.create("squeezenet1_1", num_classes=3), input_shape=(224, 224, 3))
    loaded = transfer.load_weights(tmp_path / "squeezenet.safetensors", model="squeezenet1_1")
    assert read.model_name == "squeezenet1_1"
    for a, b in zip(jax.tree.leaves(read.variables), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(a, b)

    again = convert(str(tmp_path / "squeezenet.safetensors"), "--model", "squeezenet1_1", "--out", str(out))
    assert again.returncode == 1 and "already exists; choose another --out" in again.stderr
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "squeezenet.safetensors").read_bytes()[:5000])
    cut = convert(str(tmp_path / "cut.safetensors"), "--model", "squeezenet1_1", "--out", str(tmp_path / "x"))
    assert cut.returncode == 1 and f"{tmp_path / 'cut.safetensors'}: truncated" in cut.stderr
    assert not (tmp_path / "x").exists()
