"""From the command line: every optimizer, the other data sources, and the helper commands."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam"]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_every_optimizer_trains_the_default_experiment_for_an_epoch(cli, tmp_path):
    """One Hydra multirun: seven jobs, one per optimizer, each a full run directory."""
    cli(f"optimizer={','.join(OPTIMIZERS)}", "trainer.epochs=1", f"hydra.sweep.dir={tmp_path}", "-m")
    for job, name in enumerate(OPTIMIZERS):
        job_dir = tmp_path / str(job)
        config = (job_dir / ".hydra" / "config.yaml").read_text()
        assert f"name: {name}\n" in config
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["steps"] == 1077 // 32 and np.isfinite(summary["test_loss"]), name
        assert summary["test_top1"] > 0.2, name  # better than chance after one epoch


def test_schedule_and_penalty_are_logged(cli, tmp_path):
    cli(f"hydra.run.dir={tmp_path}", "trainer.epochs=2", "optimizer=nesterov", "optimizer.learning_rate=0.05",
        "schedule=step_decay", "schedule.every=1", "schedule.factor=0.5", "l2=1e-4")  # fmt: skip
    train = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]  # fmt: skip
    assert [round(r["lr"], 6) for r in train] == [0.05, 0.025]
    assert all(r["penalty"] > 0 for r in train)


def test_bad_optimizer_values_fail_at_config_time_naming_the_key(cli, tmp_path):
    proc = cli(f"hydra.run.dir={tmp_path}", "optimizer.learning_rate=-0.1", check=False)
    assert proc.returncode != 0 and "optimizer.learning_rate must be a finite number > 0, got -0.1" in proc.stderr
    proc = cli(f"hydra.run.dir={tmp_path}", "optimizer=rmsprop", "optimizer.decay=1.5", check=False)
    assert proc.returncode != 0 and "optimizer.decay must be in [0, 1), got 1.5" in proc.stderr


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST IDX files absent from {FASHION}: "
                    "`apt-get install dataset-fashion-mnist` (Debian; CI installs it)")  # fmt: skip
def test_fashion_mnist_trains_from_the_command_line(cli, tmp_path):
    cli(f"hydra.run.dir={tmp_path}", "data=fashion_mnist", "model=lenet5", "data.train_subset=2000",
        "trainer.epochs=1", "trainer.batch_size=100")  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 2000 // 100
    assert summary["test_top1"] > 0.5  # 10,000 official test images


def test_image_folder_trains_from_the_command_line(cli, tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for label, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(20):
            image = rng.integers(0, 60, (24, 20, 3), dtype=np.uint8)
            image[..., label] = 220
            Image.fromarray(image).save(root / name / f"{i}.png")
    (root / "red" / "notes.txt").write_text("not an image")
    proc = cli(f"hydra.run.dir={tmp_path / 'run'}", "data=image_folder", f"data.root={root}", "trainer.epochs=3",
               "trainer.batch_size=12")  # fmt: skip
    assert "notes.txt" in proc.stdout + proc.stderr  # skipped and listed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_top1"] > 0.6 and summary["test_top5"] is None  # 3 classes: no top-5


def test_summary_command_prints_the_lectures_table():
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.summary", "model=typical_cnn",
                           "model.input_shape=[28,28,1]"], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "(None, 26, 26, 8)" in proc.stdout and "Total params: 27,562" in proc.stdout


def test_trajectories_command_writes_a_png_per_surface(tmp_path):
    env = {**os.environ}
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.trajectories", "--out", str(tmp_path), "--steps", "50"],
                          cwd=REPO, capture_output=True, text=True, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) == 4 and all(p.stat().st_size > 10_000 for p in pngs)
