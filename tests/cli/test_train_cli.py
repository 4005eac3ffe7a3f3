"""End to end: `cnnlab-train` from the command line into a run directory."""

import json
import subprocess
import sys
import zipfile

import jax
import numpy as np
import pytest
import yaml

from cnnlab import data, models, optim
from cnnlab.train import checkpoint, loop, steps
from cnnlab.train import state as train_state
from tests.conftest import REPO

SUMMARY_KEYS = {
    "test_top1", "test_top5", "test_loss", "best_val_top1", "best_epoch", "epochs_run",
    "stopped_early", "steps", "wall_s", "params", "device_count",
}  # fmt: skip


@pytest.fixture(scope="module")
def one_epoch_run(cli, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    proc = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=1")
    return run_dir, proc


def test_run_directory_holds_every_file(one_epoch_run):
    run_dir, proc = one_epoch_run
    assert "test top-1:" in proc.stdout
    assert (run_dir / ".hydra" / "config.yaml").exists()
    config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert config["trainer"]["epochs"] == 1 and config["model"]["name"] == "lenet5"
    assert (run_dir / "curves.png").stat().st_size > 10_000

    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["epochs_run"] == 1 and summary["steps"] == 1077 // 32
    assert summary["params"] == 61_706 and summary["stopped_early"] is False

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in records] == [(1, "train"), (1, "val"), (1, "test")]
    for r in records:
        assert {"step", "epoch", "split", "loss", "top1", "top5", "lr", "wall_s"} <= set(r)
    assert records[-1]["top1"] == summary["test_top1"]
    assert f"run directory: {run_dir} (curves.png, metrics.jsonl, summary.json)" in proc.stdout.splitlines()[-1]


def test_images_per_s_is_the_steady_rate_and_the_first_call_with_its_compilation_is_timed_apart(cli, tmp_path):
    proc = cli(f"hydra.run.dir={tmp_path}", "trainer.epochs=2", "compilation_cache=null")
    train = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]
    first, second = train
    assert first["first_call_s"] > 10 * second["first_call_s"]  # epoch 1's first call compiled the step
    # Compilation left out, epoch 1 runs about as fast as epoch 2 (with it, several times slower).
    assert 1 / 3 < first["images_per_s"] / second["images_per_s"] < 3, train
    assert first["wall_s"] > first["first_call_s"]


def test_checkpoint_restores_the_trained_model(one_epoch_run, digits_cfg):
    """Restoring the last checkpoint and evaluating it gives the summary's test top-1."""
    run_dir, _ = one_epoch_run
    summary = json.loads((run_dir / "summary.json").read_text())
    dataset = data.load(digits_cfg)
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    tx, _ = optim.build({"name": "adam", "learning_rate": 1e-3})
    fresh = train_state.create(model, tx, (32, 32, 1), seed=123)

    mngr = checkpoint.manager(run_dir / "checkpoints", keep_latest=2)
    restored, progress = checkpoint.restore(mngr, mngr.latest_step(), fresh)
    assert progress.epoch(summary["steps"]) == 1 and int(restored.step) == summary["steps"]
    batches = data.eval_batches(dataset.splits["test"], batch_size=256, normalization=dataset.normalization)
    eval_step = jax.jit(steps.make_eval_step(model, num_classes=10))
    sums = [eval_step(restored, batch) for batch in batches]
    test = {k: sum(float(s[k]) for s in sums) / sum(float(s["count"]) for s in sums) for k in ("loss", "top1")}
    assert test["top1"] == pytest.approx(summary["test_top1"], abs=1e-6)


def test_rerun_resumes_and_matches_an_uninterrupted_run(cli, tmp_path):
    """Stopping after epoch 1 and re-running to epoch 2 ends where a 2-epoch run ends."""
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    cli(f"hydra.run.dir={resumed}", "trainer.epochs=1")
    proc = cli(f"hydra.run.dir={resumed}", "trainer.epochs=2")
    cli(f"hydra.run.dir={straight}", "trainer.epochs=2")
    assert "resumed from" in proc.stdout

    def without_wall(path):
        return [{k: v for k, v in json.loads(line).items() if k not in ("wall_s", "images_per_s", "first_call_s")}
                for line in path.read_text().splitlines()]  # fmt: skip

    assert without_wall(resumed / "metrics.jsonl") == without_wall(straight / "metrics.jsonl")


def test_unknown_group_option_lists_the_options(cli, tmp_path):
    proc = cli(f"hydra.run.dir={tmp_path}", "model=no_such_model", check=False)
    assert proc.returncode != 0
    assert "Could not find 'model/no_such_model'" in proc.stderr
    assert "lenet5" in proc.stderr  # Hydra's list of available options


def test_batch_larger_than_training_set_is_a_clear_error(cli, tmp_path):
    proc = cli(f"hydra.run.dir={tmp_path}", "trainer.batch_size=5000", check=False)
    assert proc.returncode != 0
    assert "trainer.batch_size=5000 is larger than the training set (1077 examples)" in proc.stderr


@pytest.mark.slow
def test_default_experiment_learns_the_digits(cli, tmp_path):
    cli(f"hydra.run.dir={tmp_path}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs_run"] == 15
    # Test top-1 is the last epoch's, on 360 images, after 15 epochs of Adam at a
    # constant 1e-3: its val top-1 swings by 2-3 points from epoch to epoch. Seeds
    # 0-3 (and float-level changes to the convolution code) ended at 0.947-0.981,
    # with a best val top-1 of 0.975-0.983.
    assert summary["best_val_top1"] >= 0.97
    assert summary["test_top1"] >= 0.94


@pytest.mark.slow
def test_wheel_ships_the_configs(tmp_path):
    """`pip install .` (not editable) gives a cnnlab-train that finds its configs."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, REPO], check=True)
    (wheel,) = tmp_path.glob("cnnlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"cnnlab/conf/config.yaml", "cnnlab/conf/model/lenet5.yaml", "cnnlab/conf/data/digits.yaml"} <= set(names)
    variants = {"cnnlab/conf/experiment/regularization/l1.yaml", "cnnlab/conf/experiment/lr_schedules/plateau.yaml"}
    assert variants <= set(names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", target, wheel], check=True)
    # The installed copy comes first on the path, ahead of the editable checkout.
    def installed_config(*overrides: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", f"import cnnlab, sys; print(cnnlab.__file__); sys.argv[1:] = {['--cfg', 'job', *overrides]};"
             "from cnnlab.cli.train import main; main()"],
            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert str(target) in proc.stdout.splitlines()[0]
        return proc.stdout

    default = installed_config()
    assert "name: lenet5" in default and "epochs: 15" in default
    assert "l1: 0.0001" in installed_config("experiment=regularization/l1")  # a study variant, one folder down


BAD_CONFIGS = [
    ("optimizer.learning_rate=-1", "optimizer.learning_rate must be a finite number > 0, got -1.0"),
    ("optimizer.learning_rate=0", "optimizer.learning_rate must be a finite number > 0, got 0.0"),
    ("optimizer.learning_rate=abc", "optimizer.learning_rate must be a number, got 'abc'"),
    ("trainer.batch_size=0", "trainer.batch_size must be a whole number >= 1, got 0"),
    ("trainer.batch_size=-32", "trainer.batch_size must be a whole number >= 1, got -32"),
    ("trainer.epochs=0", "trainer.epochs must be a whole number >= 1, got 0"),
    ("seed=-1", "seed must be a whole number >= 0, got -1"),
    ("data.channels=2", "data.channels must be 1 (grey) or 3 (RGB), got 2"),
    ("data.image_size=0", "data.image_size must be a whole number >= 1, got 0"),
    ("data.split.val=0", "data.split.train, val and test must be > 0 and sum to 1"),
    ("trainer.label_smoothing=2", "trainer.label_smoothing must be in [0, 1), got 2.0"),
    ("checkpoint.every_steps=-3", "checkpoint.every_steps must be a whole number >= 1, got -3"),
    ("trainer.early_stopping.min_delta=-1", "trainer.early_stopping.min_delta must be >= 0"),
    ("data=mnist", "data=mnist needs data.dir=<the folder of its four IDX files>"),
    ("model=alexnet", "model=alexnet does not fit data.image_size=32: its windows need inputs of at least 67x67 "
                      "(its paper used 227x227x3); set data.image_size=227"),
    ("model=inception_v3", "model=inception_v3 does not fit data.image_size=32"),
]  # fmt: skip


@pytest.mark.parametrize("override, message", BAD_CONFIGS, ids=[o for o, _ in BAD_CONFIGS])
def test_a_bad_config_value_is_one_sentence_before_any_data_is_loaded(cli, tmp_path, override, message):
    proc = cli(f"hydra.run.dir={tmp_path}", override, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-2000:]
    assert message in output
    assert "Traceback" not in output and "HYDRA_FULL_ERROR=1" in output
    assert "digits:" not in output, "the data was loaded before the check"
    assert "Traceback" in (tmp_path / "error.txt").read_text()  # the whole story, for a bug report


def test_convert_weights_help_shows_its_whole_description():
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.convert_weights", "--help"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0
    assert "`cnnlab-convert-weights <file> --model <name> --out <dir>`" in proc.stdout
    assert "transfer.from_run" in proc.stdout


def test_load_weights_reads_a_run_directory(one_epoch_run):
    """`cnnlab.transfer.load_weights("runs/<dir>", model=...)`, as the README says, gives the run's weights."""
    from cnnlab import transfer

    run_dir, _ = one_epoch_run
    variables = transfer.load_weights(run_dir, model="lenet5", activation="relu", pooling="max")
    mngr = checkpoint.manager(run_dir / "checkpoints", keep_latest=2)
    saved = ocp_restore_params(run_dir / "checkpoints" / str(mngr.best_step()))
    for a, b in zip(jax.tree.leaves(variables["params"]), jax.tree.leaves(saved)):
        np.testing.assert_array_equal(a, b)
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    assert model.apply(variables, np.zeros((1, 32, 32, 1), np.float32)).shape == (1, 10)


def ocp_restore_params(step_dir):
    import orbax.checkpoint as ocp

    return ocp.StandardCheckpointer().restore(step_dir / "state")["params"]
