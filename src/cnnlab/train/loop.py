"""The training engine: one epoch loop, one evaluation, one summary, one checkpoint path.

`run(cfg, run_dir)` is a single run, top to bottom: data -> model -> optimizer
-> state -> epochs -> test. `train(job, cfg, par, run_dir)` is the engine it
calls, and the one that `vmap_sweep.run` calls for K variants trained side by
side: a variant is a "track" with its own metrics.jsonl, early stopping,
best epoch and summary (a single run is the one track, written to `run_dir`
itself; a sweep's track i is written to `run_dir/<i>/`).

The engine writes metrics.jsonl, checkpoints/, tensorboard/, summary.json and
curves.png. Re-running in the same directory resumes from the latest good
checkpoint and ends bitwise where an uninterrupted run ends.
"""

import contextlib
import dataclasses
import functools
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import backend, data, optim, stopping
from cnnlab.report import curves
from cnnlab.train import checkpoint, checks, early_stopping, logs, parallel, run_end, setup
from cnnlab.train import run_dir as run_dir_lib
from cnnlab.train import metrics as metrics_lib
from cnnlab.train.progress import Progress

log = logging.getLogger(__name__)


def run(cfg: Mapping[str, Any], run_dir: Path) -> dict:
    """Train as `cfg` says and return the summary (also written to summary.json)."""
    with backend.use(cfg.get("backend", "auto")):
        par = start(cfg)
        if (cfg.get("transfer") or {}).get("strategy") == "linear_probe":  # fitted, not trained
            return setup.run_linear_probe(cfg, par, run_dir)
        return train(setup.build(cfg, par), cfg, par, run_dir).summaries[0]


def start(cfg: Mapping[str, Any]):
    """The distributed runtime (before any JAX call, as it must be), the config's checks that
    need no data, then the parallel strategy and the checks that need only the devices."""
    parallel.initialize_multihost(cfg["parallel"])
    checks.check(cfg)
    par = parallel.create(cfg["parallel"]["name"])
    parallel.check_batch_size("trainer.batch_size", cfg["trainer"]["batch_size"])
    parallel.check_batch_size("trainer.eval_batch_size", cfg["trainer"]["eval_batch_size"])
    return par


class Track:
    """One variant's record: its directory, metrics log, early stopping and fate."""

    def __init__(self, directory: Path, label: str, cfg: Mapping[str, Any], progress: Progress, index: int):
        directory.mkdir(parents=True, exist_ok=True)
        self.dir, self.label = directory, label
        self.metrics = logs.MetricsLog(directory / "metrics.jsonl", resume_step=progress.step)
        self.stopper = early_stopping.EarlyStopping.from_config(cfg["trainer"]["early_stopping"],
                                                                progress.stoppers[index])  # fmt: skip
        self.error = progress.errors[index]
        self.board = logs.TensorBoard(directory / "tensorboard") if cfg["logger"]["tensorboard"] else None

    @property
    def done(self) -> bool:
        """Stopped early or failed: trains on with the others, but logs nothing more."""
        return self.stopper.stopped or self.error is not None

    def fail(self, error: Exception) -> None:
        self.error = "".join(traceback.format_exception_only(error)).strip()
        (self.dir / "error.txt").write_text(self.error + "\n")
        log.warning("variant %s failed: %s", self.label, self.error)

    def record(self, record: dict) -> None:
        self.metrics.append(record)
        if self.board:
            self.board.scalars(record["split"], record)

    def close(self) -> None:
        if self.board:
            self.board.close()


@dataclasses.dataclass(frozen=True)
class Outcome:
    summaries: list[dict | None]  # per variant; None for a variant that failed
    state: Any  # the final state on the host (a leading (K,) axis for variants)


def train(job: setup.Job, cfg: Mapping[str, Any], par, run_dir: Path) -> Outcome:
    """Train every variant of `job` for its epochs, test each, write the run directory.

    The run directory is claimed first (run_dir.py): one process at a time, and a resume
    only with the config and data it was started with (or an allowed change)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpts = checkpoint.manager(run_dir / "checkpoints", keep_latest=cfg["checkpoint"]["keep_latest"],
                               asynchronous=cfg["checkpoint"]["asynchronous"], variants=job.k)  # fmt: skip
    try:
        with run_dir_lib.claim(run_dir, cfg, run_dir_lib.data_record(job.dataset), ckpts) as changed:
            outcome = _train(job, cfg, par, run_dir, ckpts, changed)
    except BaseException:
        with contextlib.suppress(Exception):  # a failed background write again: the first error is the one
            ckpts.close()
        raise
    ckpts.close()
    return outcome


def _train(job: setup.Job, cfg: Mapping[str, Any], par, run_dir: Path, ckpts, changed: list[str]) -> Outcome:
    started = time.perf_counter()
    state = job.init(par)
    restored = checkpoint.restore_latest_good(ckpts, par.gather(state))
    progress = Progress.fresh(job.k)
    if restored is not None:
        state, progress = par.place(restored[0]), restored[1]
        log.info("resumed from %s at step %d (epoch %d)", ckpts.directory, progress.step,
                 progress.epoch(job.steps_per_epoch) + 1)  # fmt: skip
        if "optimizer.learning_rate" in changed and job.variants is None and job.start is None:
            # checkpoint.allow_changes=[optimizer.learning_rate]: the peak rate lives in the optimizer state
            host = par.gather(state)
            rate = cfg["optimizer"]["learning_rate"]
            state = par.place(host.replace(opt_state=optim.schedules.set_peak_rate(host.opt_state, rate)))
    elif job.start is not None:  # a fresh transfer run: the pretrained base, the new head from the seed
        state = par.place(job.start(par.gather(state)))
    tracks = [Track(run_dir if job.variants is None else run_dir / str(v.index), "" if job.variants is None else v.label,
                    cfg, progress, i) for i, v in enumerate(job.variants or [None])]  # fmt: skip
    wall_before = progress.wall_s  # what the sessions before a resume took
    wall = lambda: wall_before + time.perf_counter() - started  # noqa: E731
    normalization, data_record = job.dataset.normalization.as_dict(), run_dir_lib.data_record(job.dataset)

    def save(state, at: Progress, epoch_end: int | None) -> None:
        at = refuse_nonfinite(job, par, state, tracks, at, ckpts)
        snapshot = jax.tree.map(lambda x: x.copy(), par.gather(state))  # the background write's own copy
        scores = None if epoch_end is None else {"best_score": [t.stopper.checkpoint_score(epoch_end) for t in tracks]}
        checkpoint.save(ckpts, snapshot, progress=at, normalization=normalization, config=dict(cfg), data=data_record,
                        metrics=scores)  # fmt: skip

    for epoch in range(progress.epoch(job.steps_per_epoch), job.epochs):  # trainer.epochs, then any fine-tune epochs
        if all(t.done for t in tracks):
            break
        state, progress, train_sums, last_lr, timing = train_epoch(job, par, state, progress, epoch, cfg, save, wall)
        val = evaluate(job, par, state, "val")
        for track, sums, lr, val_metrics in zip(tracks, train_sums, last_lr, val):
            if track.done:
                continue
            try:
                train_metrics = {**job.running.means(sums, epoch=epoch), "lr": lr, **timing}
            except FloatingPointError as error:
                if job.variants is None:
                    raise
                track.fail(error)
                continue
            for split, metrics in (("train", train_metrics), ("val", {**val_metrics, "lr": lr})):
                track.record({"step": progress.step, "epoch": epoch + 1, "split": split, **metrics, "wall_s": wall()})
            if track.board and job.variants is None:
                track.board.learning_rates(job.learning_rate, progress.step - job.steps_per_epoch, progress.step)
            log_epoch(track, epoch, job.epochs, train_metrics, val_metrics)
            track.stopper.update(epoch + 1, val_metrics)
        if all(t.error is not None for t in tracks):
            raise FloatingPointError(f"every variant failed; the first: {tracks[0].error}")
        progress = dataclasses.replace(progress, iterator=None, sums=None, wall_s=wall(),
                                       stoppers=tuple(t.stopper.record() for t in tracks),
                                       errors=tuple(t.error for t in tracks))  # fmt: skip
        save(state, progress, epoch_end=epoch + 1)
    checkpoint.wait(ckpts)  # a failed background write stops the run here, in one message

    state = best_weights(job, par, ckpts, state, tracks, progress.step)
    summaries = finish(job, par, state, tracks, progress.step, wall, test=cfg["trainer"].get("test", True))
    run_end.write(cfg, job, tracks, summaries, progress.step)  # HParams; trainer.analyze: analysis/
    for track in tracks:
        track.close()
    return Outcome(summaries, par.gather(state))


def refuse_nonfinite(job: setup.Job, par, state, tracks: list[Track], at: Progress, ckpts) -> Progress:
    """Nothing non-finite is checkpointed: a single run stops naming the step and the checkpoint a
    rerun resumes from; a sweep's variant fails alone (its rows are kept, marked failed)."""
    finite = np.asarray(jax.device_get(_finite_rows(par.gather(state), job.variants is not None))).reshape(-1)
    diverged = [i for i, ok in enumerate(finite) if not ok and tracks[i].error is None]
    if not diverged:
        return at
    if job.variants is None:
        latest = ckpts.latest_step()
        kept = f"the last checkpoint, step {latest}, is kept and a rerun resumes from it" if latest is not None \
            else "no checkpoint was written"
        raise FloatingPointError(f"non-finite values in the train state at step {at.step}: not checkpointed; {kept}. "
                                 "Lower the learning rate, or set trainer.skip_nonfinite=true to skip such updates")
    for i in diverged:
        tracks[i].fail(FloatingPointError(f"non-finite values in the train state at step {at.step}"))
    return dataclasses.replace(at, errors=tuple(t.error for t in tracks))


@functools.partial(jax.jit, static_argnums=1)
def _finite_rows(state, stacked: bool) -> jax.Array:
    """Whether every float of the state is finite: (), or (K,) per variant."""
    leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)]
    if not stacked:
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]), axis=0)


def train_epoch(job: setup.Job, par, state, progress: Progress, epoch: int, cfg, save: Callable, wall: Callable):
    """Train one epoch (or its rest, after a mid-epoch resume).

    Returns the state, the progress at the epoch's end, each variant's running sums
    (host floats), each variant's rate of its last update, and the epoch's timing: its steady
    images/s (without the first call) and the first call's seconds (compilation included).
    """
    trainer = cfg["trainer"]
    batches = data.train_batches(
        job.dataset.splits["train"], batch_size=job.host_batch_size, seed=cfg["seed"], epoch=epoch,
        normalization=job.dataset.normalization, shard_index=jax.process_index(), shard_count=jax.process_count(),
    )  # fmt: skip
    iterator = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
    if progress.iterator is not None:
        iterator.set_state(progress.iterator)
    zero = [job.running.zero()] * job.k
    sums = job.stack_sums(progress.sums or zero)
    phase = job.phase(epoch)  # the fine-tune phase has its own steps
    every_steps = cfg["checkpoint"]["every_steps"]
    done, total = progress.batch(job.steps_per_epoch), len(batches)
    bar = logs.progress_bar(total, initial=done, epoch=epoch, enabled=cfg["logger"]["progress_bar"])
    step, started, images = progress.step, time.perf_counter(), 0
    steady = None  # (time, images) once the epoch's first call is done: it compiles in a fresh process
    while done < total:
        stopping.check()  # a SIGINT/SIGTERM whose exception a library's bare `except:` lost
        # Whole chunks of steps_per_call steps in one call; the epoch's tail one at a time.
        k = trainer["steps_per_call"] if total - done >= trainer["steps_per_call"] else 1
        local = [next(iterator) for _ in range(k)]
        for batch in local:
            job.check_labels(batch, "train", step)
        if k > 1:
            stacked = {key: np.stack([b[key] for b in local]) for key in local[0]}  # (S, B, ...)
            state, metrics = phase.multi_step(state, par.put(stacked, batch_axis=1))
        else:
            state, metrics = phase.train_step(state, par.put(local[0]))
        metrics = par.metrics(metrics)
        sums = job.add(sums, metrics)
        step, done, images = step + k, done + k, images + k * trainer["batch_size"]
        if steady is None:
            jax.block_until_ready(metrics)
            steady = (time.perf_counter(), images)
            first_call_s = steady[0] - started
        bar.update(k)
        if job.variants is None and (done % 10 < k or done == total):  # reading a value waits for the device
            means = job.running.means(sums, epoch=epoch)  # a non-finite loss stops a single run here
            bar.set_postfix(loss=f"{means['loss']:.3f}", top1=f"{means['top1']:.3f}",
                            img_s=f"{images / (time.perf_counter() - started):.0f}")  # fmt: skip
        crossed = every_steps and step // every_steps > (step - k) // every_steps
        if crossed and done < total:
            at = dataclasses.replace(progress, step=step, iterator=iterator.get_state(), wall_s=wall(),
                                     sums=tuple(map(metrics_lib.as_floats, job.unstack(jax.device_get(sums)))))  # fmt: skip
            save(state, at, epoch_end=None)
    bar.close()
    host_sums = [metrics_lib.as_floats(s) for s in job.unstack(jax.device_get(sums))]
    # The rate of each variant's last update as the step read it from the optimizer state.
    last_lr = [float(lr) for lr in np.asarray(jax.device_get(metrics["lr"])).reshape(job.k, -1)[:, -1]]
    # The steady rate leaves out the first call, which compiled the steps (in epoch 1, or after a resume);
    # an epoch of one call has no steady part.
    now = time.perf_counter()
    rate = (images - steady[1]) / (now - steady[0]) if steady and images > steady[1] else images / (now - started)
    timing = {"images_per_s": rate, "first_call_s": first_call_s if steady else None}
    return state, dataclasses.replace(progress, step=step), host_sums, last_lr, timing


def evaluate(job, par, state, split: str) -> list[dict]:
    """Each variant's mean loss and accuracies over every example of a split, each counted once."""
    totals = eval_totals(job, par, job.eval_step, state, split)
    means = []
    for sums in job.unstack(totals):
        count = sums.pop("count")
        means.append({k: float(v / count) for k, v in sums.items()})
    return means


def eval_totals(job, par, eval_step, state, split: str) -> dict[str, np.ndarray]:
    """`eval_step`'s sums over every example of a split (float64), each counted once.

    The sums keep the step's own shape: () for a single run, (K,) for variants.
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


def best_weights(job: setup.Job, par, ckpts, state, tracks: list[Track], step: int):
    """Each variant's weights of its best epoch where early stopping is on: the lecture's
    "stop iterations; load previously saved optimal model weights"."""
    wanted: dict[int, list[int]] = {}
    for i, track in enumerate(tracks):
        best_step = track.stopper.best_epoch * job.steps_per_epoch
        if track.stopper.enabled and track.error is None and best_step != step:
            wanted.setdefault(best_step, []).append(i)
    if not wanted:
        return state
    host = par.gather(state)
    for best_step, indices in sorted(wanted.items()):
        best, _ = checkpoint.restore(ckpts, best_step, host)
        if job.variants is None:
            host = best
        else:
            rows = np.asarray(indices)
            host = jax.tree.map(lambda now, then: now.at[rows].set(then[rows]), host, best)
        for i in indices:
            log.info("restored the best weights%s: step %d (epoch %d)", f" of {tracks[i].label}" if tracks[i].label
                     else "", best_step, tracks[i].stopper.best_epoch)  # fmt: skip
    return par.place(host)


def finish(job: setup.Job, par, state, tracks: list[Track], step: int, wall: Callable, *,
           test: bool = True) -> list[dict | None]:  # fmt: skip
    """Test every variant that has not failed; write its test line, summary.json and curves.png.
    `test=False` (trainer.test=false: a search's trials, which select on validation) leaves the
    test split unread and the summary's test keys null."""
    tests = evaluate(job, par, state, "test") if test else [None] * len(tracks)
    summaries = []
    for track, test in zip(tracks, tests):
        if track.error is not None:
            summaries.append(None)
            continue
        records = logs.read(track.dir / "metrics.jsonl")  # every epoch's, those of earlier sessions of a resumed run too
        trained = [r for r in records if r["split"] == "train"]
        epochs = [r for r in records if r["split"] == "val"]
        if test is not None:
            test_record = {"step": step, "epoch": epochs[-1]["epoch"] if epochs else 0, "split": "test", **test,
                           "lr": trained[-1]["lr"] if trained else None, "wall_s": wall()}  # fmt: skip
            track.metrics.append(test_record)
            records.append(test_record)
        summary = summarize(records, test or {}, track.stopper, job, steps=step, wall_s=wall())
        (track.dir / "summary.json").write_text(logs.dumps(summary, indent=2) + "\n")
        curves.plot(records, track.dir / "curves.png")
        label = f"{track.label}: " if track.label else ""
        if test is None:
            log.info("%snot tested (trainer.test=false); best val top-1 %.4f at epoch %d", label,
                     summary["best_val_top1"], summary["best_epoch"])  # fmt: skip
        else:
            log.info("%stest top-1: %.4f  (best val top-1 %.4f at epoch %d)", label, summary["test_top1"],
                     summary["best_val_top1"], summary["best_epoch"])  # fmt: skip
        summaries.append(summary)
    if job.variants is None and tracks[0].error is None:
        log.info("run directory: %s (curves.png, metrics.jsonl, summary.json)", tracks[0].dir)
    return summaries


def log_epoch(track: Track, epoch: int, epochs: int, train: dict, val: dict) -> None:
    log.info("%sepoch %d/%d  train loss %.4f top-1 %.4f  val loss %.4f top-1 %.4f",
             f"{track.label}: " if track.label else "", epoch + 1, epochs, train["loss"], train["top1"],
             val["loss"], val["top1"])  # fmt: skip


def summarize(records: list[dict], test: dict, stopper, job, *, steps: int, wall_s: float) -> dict:
    val = [r for r in records if r["split"] == "val"]
    best = next(r for r in val if r["epoch"] == stopper.best_epoch)  # the monitored best, as checkpointed
    return {
        "test_top1": test.get("top1"),  # None: not tested (trainer.test=false)
        "test_top5": test.get("top5"),
        "test_loss": test.get("loss"),
        "best_val_top1": best["top1"],
        "best_epoch": best["epoch"],
        "epochs_run": val[-1]["epoch"],
        "stopped_early": stopper.stopped,
        "steps": steps,
        "wall_s": wall_s,
        "params": job.param_count,
        "device_count": jax.device_count(),
    }
