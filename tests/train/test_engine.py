"""The training engine in-process: steps_per_call, early stopping, faults, bf16."""

import dataclasses
import json

import jax
import numpy as np
import optax
import pytest

from cnnlab import data, models, optim
from cnnlab.train import checkpoint, loop, parallel, setup, steps
from cnnlab.train import state as train_state


def test_steps_per_call_equals_single_steps():
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    tx = optax.adam(1e-3)
    step = steps.make_train_step(model, tx, num_classes=10, learning_rate=lambda o: 1e-3)
    rng = np.random.default_rng(0)
    batches = {"image": rng.normal(size=(4, 8, 32, 32, 1)).astype(np.float32),
               "label": rng.integers(0, 10, (4, 8)).astype(np.int32)}  # fmt: skip
    start = train_state.create(model, tx, (32, 32, 1), seed=0)

    single, train_step = start, jax.jit(step)
    for i in range(4):
        single, _ = train_step(single, {k: v[i] for k, v in batches.items()})
    scanned, metrics = jax.jit(steps.make_multi_step(step))(start, batches)
    assert metrics["loss"].shape == (4,) and int(scanned.step) == 4
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(scanned.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_call_runs_end_to_end(compose, tmp_path):
    summary = loop.run(compose("trainer.epochs=1", "trainer.steps_per_call=4"), tmp_path)
    assert summary["steps"] == 1077 // 32  # 8 calls of 4 steps, then the tail one at a time


def test_early_stopping_restores_the_best_epoch(compose, tmp_path):
    # No epoch after the first improves val loss by 10, so the run stops after patience=1.
    cfg = compose("trainer.epochs=6", "trainer.early_stopping.monitor=val_loss", "trainer.early_stopping.patience=1",
                  "trainer.early_stopping.min_delta=10")  # fmt: skip
    summary = loop.run(cfg, tmp_path)
    assert summary["stopped_early"] is True
    assert (summary["best_epoch"], summary["epochs_run"]) == (1, 2)

    # The test evaluation used epoch 1's checkpoint, not the last weights.
    dataset = data.load(cfg["data"])
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    tx, _ = optim.build(cfg["optimizer"], cfg["schedule"])
    like = train_state.create(model, tx, (32, 32, 1), seed=0)
    mngr = checkpoint.manager(tmp_path / "checkpoints", keep_latest=2)
    assert mngr.best_step() == 1077 // 32
    par = parallel.create("jit")
    job = setup.build(cfg, par)
    assert job.dataset.splits["test"].indices.tolist() == dataset.splits["test"].indices.tolist()
    tops = {}
    for step in (1077 // 32, 2 * (1077 // 32)):
        restored, _ = checkpoint.restore(mngr, step, like)
        (tops[step],) = [m["top1"] for m in loop.evaluate(job, par, restored, "test")]
    assert summary["test_top1"] == pytest.approx(tops[1077 // 32], abs=1e-9)
    assert tops[1077 // 32] != tops[2 * (1077 // 32)]


def poison_batch(monkeypatch, index: int):
    """Make training batch `index` of epoch 0 NaN."""
    original = data.train_batches

    def poisoned(*args, **kwargs):
        batches = original(*args, **kwargs)
        if kwargs["epoch"] != 0:
            return batches
        return batches.map_with_index(lambda i, b: {**b, "image": b["image"] * np.nan} if i == index else b)

    monkeypatch.setattr(data, "train_batches", poisoned)


def test_nonfinite_loss_stops_the_run_naming_the_step(compose, tmp_path, monkeypatch):
    poison_batch(monkeypatch, 5)
    with pytest.raises(FloatingPointError, match="non-finite loss at step 5 "):
        loop.run(compose("trainer.epochs=1"), tmp_path)
    assert not (tmp_path / "checkpoints").exists() or not list((tmp_path / "checkpoints").glob("[0-9]*"))


def test_skip_nonfinite_skips_the_update_and_counts_it(compose, tmp_path, monkeypatch):
    poison_batch(monkeypatch, 5)
    summary = loop.run(compose("trainer.epochs=1", "trainer.skip_nonfinite=true"), tmp_path)
    train = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][0]
    assert train["skipped_steps"] == 1 and np.isfinite(train["loss"])
    assert summary["test_top1"] > 0.5  # the poisoned update did not wreck the weights


def test_label_out_of_range_is_refused_before_the_first_step(compose, tmp_path, monkeypatch):
    original = data.load
    monkeypatch.setattr(data, "load", lambda cfg: dataclasses.replace(original(cfg), num_classes=5))
    with pytest.raises(ValueError, match=r"label \d in the train data at step 0 is outside \[0, 5\)"):
        loop.run(compose("trainer.epochs=1"), tmp_path)
    assert not (tmp_path / "metrics.jsonl").read_text()


@pytest.mark.slow
def test_bf16_training_is_within_a_point_of_fp32(compose, tmp_path):
    fp32 = loop.run(compose(), tmp_path / "fp32")
    bf16 = loop.run(compose("trainer.dtype=bfloat16"), tmp_path / "bf16")
    assert fp32["best_val_top1"] >= 0.97  # the last epoch's test top-1 swings (tests/cli/test_train_cli.py)
    assert bf16["test_top1"] >= fp32["test_top1"] - 0.01


def test_logged_learning_rate_includes_the_plateau_scale(compose, tmp_path):
    # rtol=0.9: no epoch improves the loss by 90%, so the plateau halves the rate after each.
    cfg = compose("trainer.epochs=3", "schedule=plateau", "schedule.rtol=0.9", "optimizer.learning_rate=0.001")
    loop.run(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r["lr"] for r in records if r["split"] == "train"]
    assert train[0] == pytest.approx(1e-3) and train[-1] < train[0]
    halvings = [round(np.log2(1e-3 / lr)) for lr in train]
    assert train == pytest.approx([1e-3 * 0.5**k for k in halvings], rel=1e-6) and halvings == sorted(halvings)
    assert records[-1]["split"] == "test" and records[-1]["lr"] == train[-1]


def strict_json(path) -> list:
    """Every line of a JSON file parsed as JSON proper: NaN and Infinity are refused."""
    def refuse(constant):
        raise ValueError(f"{path.name} holds {constant}, which is not JSON")

    text = path.read_text()
    lines = text.splitlines() if path.suffix == ".jsonl" else [text]
    return [json.loads(line, parse_constant=refuse) for line in lines]


def test_a_diverged_model_scores_zero_and_its_files_stay_json(compose, tmp_path):
    """lr=1e4 with skip_nonfinite: the loss is NaN, the logits too; no split may score it as correct."""
    cfg = compose("optimizer=sgd", "optimizer.learning_rate=1e4", "trainer.epochs=2", "trainer.skip_nonfinite=true")
    summary = loop.run(cfg, tmp_path)
    assert summary["test_top1"] < 0.2 and summary["best_val_top1"] < 0.2
    (saved,) = strict_json(tmp_path / "summary.json")
    records = strict_json(tmp_path / "metrics.jsonl")
    assert saved["test_top1"] == summary["test_top1"]
    test = records[-1]
    assert test["split"] == "test" and test["loss"] is None and test["nonfinite"]["loss"] in ("nan", "inf")


def test_nothing_non_finite_is_checkpointed(compose, tmp_path):
    """lr=1e6 with a checkpoint every step: the run stops at the first non-finite state, naming it
    and the checkpoint a rerun resumes from; every checkpoint kept holds finite weights."""
    import orbax.checkpoint as ocp

    cfg = compose("optimizer.learning_rate=1e6", "checkpoint.every_steps=1", "trainer.epochs=1", "logger.progress_bar=true",
                  "checkpoint.asynchronous=false")  # fmt: skip
    # Whichever check sees it first (the state before a save, or the loss when the means are read) names the step.
    with pytest.raises(FloatingPointError, match=r"non-finite (values in the train state|loss) at step \d+"):
        loop.run(cfg, tmp_path)
    steps = [int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    for step in steps:
        params = ocp.StandardCheckpointer().restore(tmp_path / "checkpoints" / str(step) / "state")  # the whole state
        floats = [x for x in jax.tree.leaves(params) if np.issubdtype(np.asarray(x).dtype, np.floating)]
        assert all(np.isfinite(x).all() for x in floats), f"checkpoint {step} holds NaN or inf"
    assert steps, "the finite steps before it were checkpointed"
