"""One run, top to bottom: data -> model -> optimizer -> state -> epochs -> test.

`run(cfg, run_dir)` takes the resolved config as plain dicts (no Hydra here)
and writes the run directory: metrics.jsonl, checkpoints/, summary.json and
curves.png. Re-running in the same directory resumes from the latest
checkpoint.
"""

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
from tqdm import tqdm

from cnnlab import data, models, optim
from cnnlab.report import curves
from cnnlab.train import checkpoint, logs, steps
from cnnlab.train import state as train_state

log = logging.getLogger(__name__)


def run(cfg: Mapping[str, Any], run_dir: Path) -> dict:
    """Train as `cfg` says and return the summary (also written to summary.json)."""
    started = time.perf_counter()
    trainer = cfg["trainer"]

    dataset = data.load(cfg["data"])
    train_split = dataset.splits["train"]
    batch_size = trainer["batch_size"]
    steps_per_epoch = len(train_split) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"trainer.batch_size={batch_size} is larger than the training set ({len(train_split)} examples)"
        )

    model_options = dict(cfg["model"])
    model_name, input_shape = model_options.pop("name"), model_options.pop("input_shape")
    model = models.create(model_name, num_classes=dataset.num_classes, **model_options)
    input_shape = tuple(input_shape or dataset.image_shape)

    optimizer_options = dict(cfg["optimizer"])
    tx = optim.create(optimizer_options.pop("name"), **optimizer_options)
    learning_rate = optimizer_options["learning_rate"]

    state = train_state.create(model, tx, input_shape, cfg["seed"])
    train_step = jax.jit(steps.make_train_step(model, tx, dataset.num_classes), donate_argnums=0)
    eval_step = jax.jit(steps.make_eval_step(model, dataset.num_classes))

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpts = checkpoint.manager(run_dir / "checkpoints", keep_latest=cfg["checkpoint"]["keep_latest"])
    progress = {"epoch": 0, "wall_s": 0.0}
    if ckpts.latest_step() is not None:
        state, progress = checkpoint.restore(ckpts, ckpts.latest_step(), state)
        log.info("resumed from %s at step %d (epoch %d)", ckpts.directory, int(state.step), progress["epoch"])
    metrics_log = logs.MetricsLog(run_dir / "metrics.jsonl", resume_step=int(state.step))
    wall = lambda: progress["wall_s"] + time.perf_counter() - started  # noqa: E731

    def evaluate(state, split: str) -> dict:
        batches = data.eval_batches(
            dataset.splits[split], batch_size=trainer["eval_batch_size"], normalization=dataset.normalization
        )
        return evaluate_split(eval_step, state, batches)

    for epoch in range(progress["epoch"], trainer["epochs"]):
        batches = data.train_batches(
            train_split, batch_size=batch_size, seed=cfg["seed"], epoch=epoch, normalization=dataset.normalization
        )
        state, train_metrics = train_epoch(
            train_step, state, batches, epoch=epoch, progress_bar=cfg["logger"]["progress_bar"]
        )
        val_metrics = evaluate(state, "val")
        step = int(state.step)
        for split, metrics in (("train", train_metrics), ("val", val_metrics)):
            metrics_log.append(
                {"step": step, "epoch": epoch + 1, "split": split, **metrics, "lr": learning_rate, "wall_s": wall()}
            )
        log.info(
            "epoch %d/%d  train loss %.4f top-1 %.4f  val loss %.4f top-1 %.4f",
            epoch + 1, trainer["epochs"], train_metrics["loss"], train_metrics["top1"],
            val_metrics["loss"], val_metrics["top1"],
        )  # fmt: skip
        progress = {"epoch": epoch + 1, "wall_s": wall()}
        started = time.perf_counter()
        checkpoint.save(ckpts, state, progress, metrics={"val_top1": val_metrics["top1"]})
    ckpts.wait_until_finished()

    test_metrics = evaluate(state, "test")
    records = logs.read(run_dir / "metrics.jsonl")
    metrics_log.append({"step": int(state.step), "epoch": progress["epoch"], "split": "test", **test_metrics,
                        "lr": learning_rate, "wall_s": wall()})  # fmt: skip
    summary = summarize(records, test_metrics, state, wall_s=wall())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    curves.plot(records, run_dir / "curves.png")
    log.info("test top-1: %.4f  (best val top-1 %.4f at epoch %d)", summary["test_top1"],
             summary["best_val_top1"], summary["best_epoch"])  # fmt: skip
    return summary


def train_epoch(train_step, state, batches: grain.MapDataset, *, epoch: int, progress_bar: bool):
    """One pass over `batches`; returns the new state and the epoch's mean metrics."""
    step_metrics, images, started = [], 0, time.perf_counter()
    loader = batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
    with tqdm(total=len(batches), desc=f"epoch {epoch + 1}", unit="step", disable=not progress_bar) as bar:
        for batch in loader:
            state, metrics = train_step(state, batch)
            step_metrics.append(metrics)
            images += len(batch["label"])
            bar.update()
            if bar.n % 10 == 0 or bar.n == bar.total:  # reading a metric waits for the device
                rate = images / (time.perf_counter() - started)
                bar.set_postfix(loss=f"{float(metrics['loss']):.3f}", top1=f"{float(metrics['top1']):.3f}",
                                img_s=f"{rate:.0f}")  # fmt: skip
    means = {k: float(np.mean([m[k] for m in jax.device_get(step_metrics)])) for k in step_metrics[0]}
    means["images_per_s"] = images / (time.perf_counter() - started)
    return state, means


def evaluate_split(eval_step, state, batches: grain.MapDataset) -> dict:
    """Mean loss and accuracies over every example of a split, each counted once."""
    sums = [eval_step(state, batch) for batch in batches]
    totals = {k: float(np.sum([s[k] for s in jax.device_get(sums)])) for k in sums[0]}
    count = totals.pop("count")
    return {k: v / count for k, v in totals.items()}


def summarize(records: list[dict], test: dict, state, *, wall_s: float) -> dict:
    val = [r for r in records if r["split"] == "val"]
    best = max(val, key=lambda r: r["top1"])
    return {
        "test_top1": test["top1"],
        "test_top5": test.get("top5"),
        "test_loss": test["loss"],
        "best_val_top1": best["top1"],
        "best_epoch": best["epoch"],
        "epochs_run": val[-1]["epoch"],
        "stopped_early": False,
        "steps": int(state.step),
        "wall_s": wall_s,
        "params": train_state.count_params(state.params),
        "device_count": jax.device_count(),
    }
