"""One run, top to bottom: data -> model -> optimizer -> state -> epochs -> test.

`run(cfg, run_dir)` takes the resolved config as plain dicts (no Hydra here)
and writes the run directory: metrics.jsonl, checkpoints/, tensorboard/,
summary.json and curves.png. Re-running in the same directory resumes from
the latest good checkpoint and ends bitwise where an uninterrupted run ends.
"""

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import data
from cnnlab.report import curves
from cnnlab.train import checkpoint, early_stopping, logs, parallel, setup
from cnnlab.train import metrics as metrics_lib
from cnnlab.transfer import linear_probe

log = logging.getLogger(__name__)


def run(cfg: Mapping[str, Any], run_dir: Path) -> dict:
    """Train as `cfg` says and return the summary (also written to summary.json)."""
    started = time.perf_counter()
    parallel.initialize_multihost(cfg["parallel"])
    par = parallel.create(cfg["parallel"]["name"])
    trainer = cfg["trainer"]
    parallel.check_batch_size("trainer.batch_size", trainer["batch_size"])
    parallel.check_batch_size("trainer.eval_batch_size", trainer["eval_batch_size"])
    job = setup.build(cfg, par)
    dataset = job.dataset
    plan = job.transfer_plan
    if plan is not None and plan.strategy == "linear_probe":  # fitted, not trained
        return linear_probe.run(plan.base, plan.pretrained.variables, dataset, cfg["transfer"],
                                run_dir, batch_size=job.host_eval_batch_size)  # fmt: skip

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpts = checkpoint.manager(run_dir / "checkpoints", keep_latest=cfg["checkpoint"]["keep_latest"],
                               asynchronous=cfg["checkpoint"]["asynchronous"])  # fmt: skip
    state = par.init(job.init_state)
    restored = checkpoint.restore_latest_good(ckpts, par.gather(state))
    progress = fresh_progress()
    if restored is not None:
        state, progress = par.place(restored[0]), restored[1]
        log.info("resumed from %s at step %d (epoch %d)", ckpts.directory, int(progress["step"]), progress["epoch"] + 1)
    elif job.start is not None:  # a fresh transfer run: the pretrained base, the new head from the seed
        state = par.place(job.start(par.gather(state)))
    metrics_log = logs.MetricsLog(run_dir / "metrics.jsonl", resume_step=progress["step"])
    board = logs.TensorBoard(run_dir / "tensorboard") if cfg["logger"]["tensorboard"] else None
    stopper = early_stopping.EarlyStopping.from_config(trainer["early_stopping"], progress["early_stopping"])
    wall_before = progress["wall_s"]  # what the runs before a resume took
    wall = lambda: wall_before + time.perf_counter() - started  # noqa: E731
    normalization = dataset.normalization.as_dict()

    def save(state, metrics):
        progress["wall_s"], progress["early_stopping"] = wall(), stopper.record()
        # The save goes on in the background while the next steps donate (overwrite) the
        # state's buffers; on CPU orbax may read them in place, so it gets its own copy.
        snapshot = jax.tree.map(lambda x: x.copy(), par.gather(state))
        checkpoint.save(ckpts, progress["step"], snapshot, progress=progress,
                        normalization=normalization, config=dict(cfg), metrics=metrics)  # fmt: skip

    for epoch in range(progress["epoch"], job.epochs):  # trainer.epochs, then any fine-tune epochs
        if stopper.stopped:
            break
        state, train_metrics = train_epoch(job, par, state, progress, epoch, cfg, save_mid_epoch=save, board=board)
        val_metrics = evaluate(job, par, state, "val")
        for split, metrics in (("train", train_metrics), ("val", {**val_metrics, "lr": train_metrics["lr"]})):
            record = {"step": progress["step"], "epoch": epoch + 1, "split": split, **metrics, "wall_s": wall()}
            metrics_log.append(record)
            if board:
                board.scalars(split, record)
        log.info("epoch %d/%d  train loss %.4f top-1 %.4f  val loss %.4f top-1 %.4f", epoch + 1,
                 job.epochs, train_metrics["loss"], train_metrics["top1"], val_metrics["loss"],
                 val_metrics["top1"])  # fmt: skip
        stopper.update(epoch + 1, val_metrics)
        progress.update(epoch=epoch + 1, batch=0, iterator=None, sums=None)
        save(state, {"best_score": stopper.checkpoint_score(epoch + 1)})
    ckpts.wait_until_finished()

    if stopper.enabled and ckpts.best_step() is not None and ckpts.best_step() != progress["step"]:
        # The lecture's "stop iterations; load previously saved optimal model weights".
        best, _ = checkpoint.restore(ckpts, ckpts.best_step(), par.gather(state))
        state = par.place(best)
        log.info("restored the best weights: step %d (epoch %d)", ckpts.best_step(), stopper.best_epoch)
    test_metrics = evaluate(job, par, state, "test")
    records = logs.read(run_dir / "metrics.jsonl")  # every epoch's, those of earlier sessions of a resumed run too
    trained = [r for r in records if r["split"] == "train"]
    last_lr = trained[-1]["lr"] if trained else float(job.learning_rate(0))  # plateau scaling included
    test_record = {"step": progress["step"], "epoch": progress["epoch"], "split": "test", **test_metrics,
                   "lr": last_lr, "wall_s": wall()}  # fmt: skip
    metrics_log.append(test_record)
    records.append(test_record)
    summary = summarize(records, test_metrics, stopper, job, steps=progress["step"], wall_s=wall())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    curves.plot(records, run_dir / "curves.png")
    if board:
        board.close()
    ckpts.close()
    log.info("test top-1: %.4f  (best val top-1 %.4f at epoch %d)", summary["test_top1"],
             summary["best_val_top1"], summary["best_epoch"])  # fmt: skip
    return summary


def fresh_progress() -> dict:
    """Where a run stands, as saved in each checkpoint (JSON)."""
    return {
        "step": 0,  # optimizer updates so far
        "epoch": 0,  # the epoch in progress (0-based), or the next one at an epoch boundary
        "batch": 0,  # batches of that epoch already trained
        "iterator": None,  # grain's iterator state after `batch` batches
        "sums": None,  # running sums of the epoch's step metrics
        "early_stopping": None,
        "wall_s": 0.0,
    }


def train_epoch(job, par, state, progress: dict, epoch: int, cfg, *, save_mid_epoch, board):
    """Train one epoch (or its rest, after a mid-epoch resume); returns the epoch's means."""
    trainer = cfg["trainer"]
    batches = data.train_batches(
        job.dataset.splits["train"], batch_size=job.host_batch_size, seed=cfg["seed"], epoch=epoch,
        normalization=job.dataset.normalization, shard_index=jax.process_index(), shard_count=jax.process_count(),
    )  # fmt: skip
    iterator = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
    if progress["iterator"] is not None:
        iterator.set_state(progress["iterator"])
    sums = progress["sums"] or job.running.zero()
    train_step, multi_step = job.steps(epoch)  # the fine-tune phase has its own
    every_steps = cfg["checkpoint"]["every_steps"]
    bar = logs.progress_bar(len(batches), initial=progress["batch"], epoch=epoch, enabled=cfg["logger"]["progress_bar"])
    started, images = time.perf_counter(), 0
    while progress["batch"] < len(batches):
        # Whole chunks of steps_per_call steps in one call; the epoch's tail one at a time.
        k = trainer["steps_per_call"] if len(batches) - progress["batch"] >= trainer["steps_per_call"] else 1
        local = [next(iterator) for _ in range(k)]
        for batch in local:
            job.check_labels(batch, "train", progress["step"])
        if k > 1:
            stacked = {key: np.stack([b[key] for b in local]) for key in local[0]}  # (K, B, ...)
            state, metrics = multi_step(state, par.put(stacked, batch_axis=1))
        else:
            state, metrics = train_step(state, par.put(local[0]))
        sums = job.running.add(sums, par.metrics(metrics))
        progress["step"] += k
        progress["batch"] += k
        images += k * trainer["batch_size"]
        bar.update(k)
        if bar.n % 10 < k or progress["batch"] == len(batches):  # reading a value waits for the device
            means = job.running.means(sums, epoch=epoch)
            bar.set_postfix(loss=f"{means['loss']:.3f}", top1=f"{means['top1']:.3f}",
                            img_s=f"{images / (time.perf_counter() - started):.0f}")  # fmt: skip
        crossed = every_steps and progress["step"] // every_steps > (progress["step"] - k) // every_steps
        if crossed and progress["batch"] < len(batches):
            progress.update(iterator=iterator.get_state(), sums=metrics_lib.as_floats(sums))
            save_mid_epoch(state, None)
    bar.close()
    means = job.running.means(sums, epoch=epoch)
    # The rate of the epoch's last update as the step computed it: the schedule times the
    # plateau scale, which lives in the optimizer state (schedule=plateau).
    means["lr"] = float(np.ravel(jax.device_get(metrics["lr"]))[-1])
    means["images_per_s"] = images / (time.perf_counter() - started)
    if board:
        board.learning_rates(job.learning_rate, progress["step"] - len(batches), progress["step"])
    return state, means


def evaluate(job, par, state, split: str) -> dict:
    """Mean loss and accuracies over every example of a split, each counted once."""
    totals = eval_totals(job, par, job.eval_step, state, split)
    count = totals.pop("count")
    return {k: float(v / count) for k, v in totals.items()}


def eval_totals(job, par, eval_step, state, split: str) -> dict[str, np.ndarray]:
    """`eval_step`'s sums over every example of a split (float64), each counted once.

    The sums keep the step's own shape: () for a single run, (K,) for a vmap sweep's variants.
    """
    batches = data.eval_batches(
        job.dataset.splits[split], batch_size=job.host_eval_batch_size, normalization=job.dataset.normalization,
        shard_index=jax.process_index(), shard_count=jax.process_count(),
    )  # fmt: skip
    sums = []
    for batch in batches:
        job.check_labels(batch, split, None)
        sums.append(par.metrics(eval_step(state, par.put(batch))))
    sums = jax.device_get(sums)
    return {key: np.sum(np.stack([s[key] for s in sums]), axis=0, dtype=np.float64) for key in sums[0]}


def summarize(records: list[dict], test: dict, stopper, job, *, steps: int, wall_s: float) -> dict:
    val = [r for r in records if r["split"] == "val"]
    best = next(r for r in val if r["epoch"] == stopper.best_epoch)  # the monitored best, as checkpointed
    return {
        "test_top1": test["top1"],
        "test_top5": test.get("top5"),
        "test_loss": test["loss"],
        "best_val_top1": best["top1"],
        "best_epoch": best["epoch"],
        "epochs_run": val[-1]["epoch"],
        "stopped_early": stopper.stopped,
        "steps": steps,
        "wall_s": wall_s,
        "params": job.param_count,
        "device_count": jax.device_count(),
    }
