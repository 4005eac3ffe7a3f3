"""`sweep=vmap`: K learning-rate x seed variants of one run in a single compiled program.

    cnnlab-train sweep=vmap sweep.learning_rates=[0.003,0.01,0.03] sweep.seeds=[0,1]

trains the 3 x 2 variants of the configured model and optimizer side by side:
the train state (params, batch statistics, optimizer state, rng) gets a
leading (K,) axis and the train step is `jax.vmap`ped over it, while every
variant sees the same batch (`in_axes=(0, None)`). The learning rate is a
hyperparameter in the optimizer state (`optax.inject_hyperparams`), so one
program serves every rate; the schedule multiplies it as it would a single
run's rate. A seed gives a variant its initialization and its dropout and
augmentation keys; the batches come in the order of the top-level `seed`,
the same for all, so variant (η, s) ends with the parameters of
`cnnlab-train optimizer.learning_rate=η seed=s` when s equals `seed`.

What K variants share: one compilation instead of K, every batch read and
normalized once, every dispatch. On GPUs and TPUs the K-wide kernels are also
better used; XLA:CPU, though, runs batched matrix products and grouped
convolutions slower per variant than a single run's (bench/bench_vmap_sweep.py:
LeNet-5 steps at K=4 took 1.3x the time of 4 sequential runs' steps), so on a
CPU the gain is in short sweeps (one epoch on the digits: 3.2x faster end to
end than 4 runs).

`run(cfg, run_dir, overrides)` writes `run_dir/<i>/` for each variant, as a
Hydra multirun writes its jobs (`.hydra/config.yaml` and `overrides.yaml`,
`metrics.jsonl`, `summary.json`, `curves.png`), then `report.md` and
`report.png` over all of them (cnnlab-report reads the directory the same way).
A variant whose loss turns non-finite is recorded as failed (`error.txt`)
and the others train on. A vmap sweep keeps no checkpoints: re-running it
starts over, in a new run directory.
"""

import dataclasses
import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import optax
import yaml
from optax import InjectStatefulHyperparamsState

from cnnlab import data, optim
from cnnlab.report import curves
from cnnlab.report import sweep as sweep_report
from cnnlab.train import early_stopping, logs, loop, parallel, setup, steps
from cnnlab.train import state as train_state

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Variant:
    index: int  # position on the leading (K,) axis, and the name of its job directory
    learning_rate: float
    seed: int


def variants(cfg: Mapping[str, Any]) -> list[Variant]:
    """Every (learning rate, seed) pair of `sweep`, rates outermost; defaults are the run's own."""
    sweep = cfg["sweep"]
    rates = sweep.get("learning_rates") or [cfg["optimizer"]["learning_rate"]]
    seeds = sweep.get("seeds") or [cfg["seed"]]
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
            raise ValueError(f"sweep.learning_rates must be numbers >= 0, got {list(rates)}")
    if len(set(map(float, rates))) < len(rates) or len(set(seeds)) < len(seeds):
        raise ValueError(f"sweep.learning_rates and sweep.seeds must not repeat, got {list(rates)} and {list(seeds)}")
    pairs = [(float(rate), int(seed)) for rate in rates for seed in seeds]
    return [Variant(i, rate, seed) for i, (rate, seed) in enumerate(pairs)]


def injected_optimizer(cfg: Mapping[str, Any], steps_per_epoch: int) -> tuple[Callable, Callable]:
    """`(make_tx, shape)`: `make_tx(lr)` is the run's optimizer with `learning_rate` in its state.

    `shape(step)` is the schedule at a peak rate of 1; the optimizer's rate at
    a step is the injected rate times `shape(step)`. All `make_tx(lr)` share
    one update function, which reads the rate from the state: the step built
    with any of them serves every variant.
    """
    opt = dict(cfg["optimizer"])
    name = opt.pop("name")
    opt.pop("learning_rate")
    l1, l2 = cfg.get("l1", 0.0), cfg.get("l2", 0.0)
    # optim.build checks every key, as for a single run, and gives the schedule at peak 1.
    _, shape = optim.build({**cfg["optimizer"], "learning_rate": 1.0}, cfg.get("schedule"), l1=l1, l2=l2,
                           steps_per_epoch=steps_per_epoch)  # fmt: skip
    factory = optim.registry.get(name)

    def core(learning_rate):  # a traced scalar inside the update: this variant's rate
        return factory(learning_rate=lambda count: learning_rate * shape(count), **opt)

    schedule_cfg = dict(cfg.get("schedule") or {"name": "constant"})
    penalties = ([optim.l1(l1)] if l1 > 0 else []) + ([optim.l2(l2)] if l2 > 0 else [])  # as optim.build orders them
    tail = [_plateau(schedule_cfg, steps_per_epoch)] if schedule_cfg["name"] == "plateau" else []

    def make_tx(learning_rate: float) -> optax.GradientTransformation:
        tx = optax.chain(*penalties, optax.inject_hyperparams(core)(learning_rate=learning_rate), *tail)
        if cfg["trainer"]["skip_nonfinite"]:
            tx = optax.apply_if_finite(tx, max_consecutive_errors=np.iinfo(np.int32).max)
        return tx

    return make_tx, shape


def _plateau(schedule_cfg: Mapping[str, Any], steps_per_epoch: int) -> optax.GradientTransformation:
    keys = ("factor", "patience", "rtol", "atol", "cooldown", "min_scale")
    return optim.schedules.plateau(*(schedule_cfg[k] for k in keys), steps_per_epoch=steps_per_epoch)


def injected_rate(opt_state: optax.OptState) -> jax.Array:
    """The `learning_rate` that `injected_optimizer` keeps in the state."""
    is_injected = lambda node: isinstance(node, InjectStatefulHyperparamsState)  # noqa: E731
    (found,) = [n for n in jax.tree.leaves(opt_state, is_leaf=is_injected) if is_injected(n)]
    return found.hyperparams["learning_rate"]


@dataclasses.dataclass(frozen=True)
class Program:
    """The compiled vmapped steps and the stacked initial state."""

    init_state: Any  # TrainState, every leaf with a leading (K,) axis, on the host
    train_step: Callable  # (state, batch) -> (state, metrics (K,))
    multi_step: Callable  # steps_per_call steps over (S, B, ...) batches -> metrics (S, K)
    eval_step: Callable  # (state, padded batch) -> sums (K,)
    add: Callable  # running sums (K,) + one call's metrics
    shape: Callable[[int], float]  # the schedule at peak 1: a variant's rate at a step is its rate times this


def build_program(cfg: Mapping[str, Any], job: setup.Job, par, grid: Sequence[Variant]) -> Program:
    """The run's train step, with the injected optimizer, vmapped over the variants."""
    trainer = cfg["trainer"]
    steps_per_epoch = len(job.dataset.splits["train"]) // jax.process_count() // job.host_batch_size
    make_tx, shape = injected_optimizer(cfg, steps_per_epoch)
    l1, l2 = cfg.get("l1", 0.0), cfg.get("l2", 0.0)
    # The same step a single run compiles (setup.build), but with the injected optimizer.
    train_step = steps.make_train_step(
        job.model,
        make_tx(0.0),  # the update reads each variant's rate from its state
        num_classes=job.dataset.num_classes,
        learning_rate=lambda step, opt_state: (injected_rate(opt_state) * shape(step)
                                               * optim.schedules.plateau_scale(opt_state)),  # fmt: skip
        label_smoothing=trainer["label_smoothing"],
        aux_loss_weight=trainer["aux_loss_weight"],
        penalty=optim.penalty(l1, l2) if (l1 or l2) else None,
        augment=data.augment.build(cfg.get("augment")),
        axis_name=par.axis_name,
    )
    eval_step = steps.make_eval_step(job.model, num_classes=job.dataset.num_classes, axis_name=par.axis_name,
                                     transform=data.augment.build_eval(cfg.get("augment")))  # fmt: skip
    input_shape = tuple(cfg["model"].get("input_shape") or job.dataset.image_shape)

    # A single run's init (state.init_fn), compiled once with the seed and rate as arguments
    # (a vmapped init compiles about twice as long, for no gain at this size).
    init = jax.jit(lambda seed, rate: train_state.init_fn(job.model, make_tx(rate), input_shape, seed)())
    states = [init(np.int32(v.seed), np.float32(v.learning_rate)) for v in grid]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *jax.device_get(states))  # (K, ...) each
    per_variant = jax.vmap(train_step, in_axes=(0, None))  # one batch for all variants
    return Program(
        init_state=stacked,
        train_step=par.compile_train(per_variant),
        multi_step=par.compile_train(steps.make_multi_step(per_variant)),
        eval_step=par.compile_eval(jax.vmap(eval_step, in_axes=(0, None))),
        add=jax.jit(jax.vmap(job.running.add)),
        shape=shape,
    )


class VariantLog:
    """One variant's job directory: its config, metrics, best epoch and fate."""

    def __init__(self, variant: Variant, cfg: Mapping[str, Any], run_dir: Path, overrides: Sequence[str]):
        self.variant, self.dir = variant, run_dir / str(variant.index)
        if (self.dir / "summary.json").exists():
            raise FileExistsError(f"{self.dir} holds a finished vmap sweep; a vmap sweep does not resume: "
                                  f"choose another hydra.run.dir")  # fmt: skip
        (self.dir / ".hydra").mkdir(parents=True, exist_ok=True)
        self.cfg = variant_config(cfg, variant)
        (self.dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        (self.dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(variant_overrides(overrides, variant)))
        self.metrics = logs.MetricsLog(self.dir / "metrics.jsonl", resume_step=0)
        self.stopper = early_stopping.EarlyStopping.from_config(cfg["trainer"]["early_stopping"], None)
        self.error: str | None = None

    def fail(self, error: Exception) -> None:
        self.error = "".join(traceback.format_exception_only(error)).strip()
        (self.dir / "error.txt").write_text(self.error + "\n")
        log.warning("variant %d (lr %g, seed %d) failed: %s", self.variant.index, self.variant.learning_rate,
                    self.variant.seed, self.error)  # fmt: skip


def variant_config(cfg: Mapping[str, Any], variant: Variant) -> dict:
    return {**cfg, "seed": variant.seed, "optimizer": {**cfg["optimizer"], "learning_rate": variant.learning_rate},
            "sweep": {**cfg["sweep"], "variant": variant.index}}  # fmt: skip


def variant_overrides(overrides: Sequence[str], variant: Variant) -> list[str]:
    """The command line's overrides as this variant's own: its rate and seed instead of the grid."""
    dropped = ("sweep=", "sweep.", "optimizer.learning_rate=", "seed=")
    kept = [o for o in overrides if not o.lstrip("+~").startswith(dropped)]
    return [*kept, f"optimizer.learning_rate={variant.learning_rate}", f"seed={variant.seed}"]


@dataclasses.dataclass(frozen=True)
class SweepResult:
    summaries: list[dict]  # of the variants that finished, in variant order
    state: Any  # the final TrainState, every leaf with a leading (K,) axis (see host_params)


def run(cfg: Mapping[str, Any], run_dir: Path, overrides: Sequence[str] = ()) -> SweepResult:
    """Train every variant, write their job directories and the report."""
    started = time.perf_counter()
    grid = variants(cfg)
    if cfg["trainer"]["early_stopping"]["patience"] is not None:
        raise ValueError("sweep=vmap trains every variant for trainer.epochs; set trainer.early_stopping.patience=null")
    parallel.initialize_multihost(cfg["parallel"])
    par = parallel.create(cfg["parallel"]["name"])
    parallel.check_batch_size("trainer.batch_size", cfg["trainer"]["batch_size"])
    parallel.check_batch_size("trainer.eval_batch_size", cfg["trainer"]["eval_batch_size"])
    job = setup.build(cfg, par)  # data, model and the checks of a single run
    if job.transfer_plan is not None:  # its frozen layers and fine-tune phase are not vmapped here
        raise ValueError("sweep=vmap does not combine with transfer; sweep its learning rates with -m instead")
    program = build_program(cfg, job, par, grid)
    variant_logs = [VariantLog(v, cfg, run_dir, overrides) for v in grid]
    log.info("vmap sweep: %d variants (learning rates x seeds) in one program", len(grid))

    state, step = par.place(program.init_state), 0
    wall = lambda: time.perf_counter() - started  # noqa: E731
    for epoch in range(cfg["trainer"]["epochs"]):
        state, step, train_metrics = train_epoch(program, job, par, state, step, epoch, cfg, variant_logs)
        val_metrics = evaluate(program, job, par, state, "val")
        for vlog, train, val in zip(variant_logs, train_metrics, val_metrics):
            if vlog.error is None:
                for split, metrics in (("train", train), ("val", {**val, "lr": train["lr"]})):
                    vlog.metrics.append({"step": step, "epoch": epoch + 1, "split": split, **metrics, "wall_s": wall()})
                vlog.stopper.update(epoch + 1, val)
        if all(v.error is not None for v in variant_logs):
            raise FloatingPointError(f"every variant of the vmap sweep failed; the first: {variant_logs[0].error}")
        log.info("epoch %d/%d  val top-1 by variant: %s", epoch + 1, cfg["trainer"]["epochs"],
                 " ".join(f"{m['top1']:.3f}" for m in val_metrics))  # fmt: skip
    summaries = finish(program, job, par, state, step, variant_logs, wall)
    sweep_report.write(run_dir)
    return SweepResult(summaries, par.gather(state))


def train_epoch(program: Program, job: setup.Job, par, state, step: int, epoch: int, cfg, variant_logs):
    """One epoch of every variant on the same batches; each alive variant's means."""
    trainer, k = cfg["trainer"], len(variant_logs)
    batches = data.train_batches(
        job.dataset.splits["train"], batch_size=job.host_batch_size, seed=cfg["seed"], epoch=epoch,
        normalization=job.dataset.normalization, shard_index=jax.process_index(), shard_count=jax.process_count(),
    )  # fmt: skip
    iterator = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
    sums = jax.tree.map(lambda v: np.full((k,), v, np.float32), job.running.zero())
    bar = logs.progress_bar(len(batches), initial=0, epoch=epoch, enabled=cfg["logger"]["progress_bar"])
    started, done = time.perf_counter(), 0
    while done < len(batches):
        n = trainer["steps_per_call"] if len(batches) - done >= trainer["steps_per_call"] else 1
        local = [next(iterator) for _ in range(n)]
        for batch in local:
            job.check_labels(batch, "train", step)
        if n > 1:
            stacked = {key: np.stack([b[key] for b in local]) for key in local[0]}  # (S, B, ...)
            state, metrics = program.multi_step(state, par.put(stacked, batch_axis=1))
            metrics = jax.tree.map(lambda x: x.T, par.metrics(metrics))  # (S, K) -> (K, S)
        else:
            state, metrics = program.train_step(state, par.put(local[0]))
            metrics = par.metrics(metrics)  # (K,)
        sums = program.add(sums, metrics)
        step, done = step + n, done + n
        bar.update(n)
    bar.close()
    seconds = time.perf_counter() - started
    host = jax.device_get(sums)
    lrs = jax.device_get(metrics["lr"])  # (K,) or (K, S): the rate of each variant's last update
    means = []
    for i, vlog in enumerate(variant_logs):
        try:
            mean = job.running.means({name: v[i] for name, v in host.items()}, epoch=epoch)
        except FloatingPointError as error:
            if vlog.error is None:
                vlog.fail(error)
            mean = {}
        rate = float(np.ravel(lrs[i])[-1])
        means.append({**mean, "lr": rate, "images_per_s": done * trainer["batch_size"] / seconds})
    return state, step, means


def evaluate(program: Program, job: setup.Job, par, state, split: str) -> list[dict]:
    """Each variant's mean loss and accuracies over every example of a split."""
    totals = loop.eval_totals(job, par, program.eval_step, state, split)  # (K,) each
    count = totals.pop("count")
    k = len(count)
    return [{key: float(value[i] / count[i]) for key, value in totals.items()} for i in range(k)]


def finish(program, job, par, state, step: int, variant_logs, wall) -> list[dict]:
    """Test every variant that is still finite; write its summary.json and curves.png."""
    test_metrics = evaluate(program, job, par, state, "test")
    shape_at_end = float(program.shape(max(step - 1, 0)))  # as a single run logs its test line
    summaries = []
    for vlog, test in zip(variant_logs, test_metrics):
        if vlog.error is not None:
            continue
        epochs = len([r for r in logs.read(vlog.dir / "metrics.jsonl") if r["split"] == "val"])
        vlog.metrics.append({"step": step, "epoch": epochs, "split": "test", **test,
                             "lr": vlog.variant.learning_rate * shape_at_end, "wall_s": wall()})  # fmt: skip
        records = logs.read(vlog.dir / "metrics.jsonl")
        summary = loop.summarize(records, test, vlog.stopper, job, steps=step, wall_s=wall())
        (vlog.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        curves.plot(records, vlog.dir / "curves.png")
        summaries.append(summary)
    return summaries


def host_params(state) -> list[Any]:
    """The variants' params as K separate host pytrees (for tests and notebooks)."""
    params = jax.device_get(state.params)
    k = len(jax.tree.leaves(params)[0])
    return [jax.tree.map(lambda x: x[i], params) for i in range(k)]
