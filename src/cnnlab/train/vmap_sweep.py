"""`sweep=vmap`: K learning-rate x seed variants of one run in a single compiled program.

    cnnlab-train sweep=vmap sweep.learning_rates=[0.003,0.01,0.03] sweep.seeds=[0,1]

trains the 3 x 2 variants of the configured model and optimizer side by side:
the train state (params, batch statistics, optimizer state, rng) gets a
leading (K,) axis and the train step is `jax.vmap`ped over it, while every
variant sees the same batch (`in_axes=(0, None)`). The peak learning rate
lives in the optimizer state (`optim.schedules.with_peak_rate`), so one
program serves every rate. A seed gives a variant its initialization and its
dropout and augmentation keys; the batches come in the order of the
top-level `seed`, the same for all, so variant (η, s) ends with the
parameters of `cnnlab-train optimizer.learning_rate=η seed=s` when s equals
`seed`.

This module is a thin layer: `setup.build(cfg, par, variants=grid)` builds the
vmapped job and `loop.train` is the engine every run goes through, so a sweep
checkpoints, resumes bitwise after a kill, stops each variant early on its own
(`trainer.early_stopping.patience`) and tests each on its own best epoch.

What K variants share: one compilation instead of K, every batch read and
normalized once, every dispatch. On GPUs and TPUs the K-wide kernels are also
better used; XLA:CPU, though, runs batched matrix products and grouped
convolutions slower per variant than a single run's (bench/bench_vmap_sweep.py:
LeNet-5 steps at K=4 took 1.3x the time of 4 sequential runs' steps), so on a
CPU the gain is in short sweeps (one epoch on the digits: 3.2x faster end to
end than 4 runs).

`run(cfg, run_dir, overrides)` writes `run_dir/<i>/` for each variant, as a
Hydra multirun writes its jobs (`.hydra/config.yaml` and `overrides.yaml`,
`metrics.jsonl`, `summary.json`, `curves.png`), `run_dir/checkpoints/` for
all of them, then `report.md` and `report.png` (cnnlab-report reads the
directory the same way). A variant whose loss turns non-finite is recorded
as failed (`error.txt`) and the others train on.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import yaml

from cnnlab import backend
from cnnlab.report import sweep as sweep_report
from cnnlab.train import loop, setup
from cnnlab.train.setup import Variant


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


@dataclasses.dataclass(frozen=True)
class SweepResult:
    summaries: list[dict]  # of the variants that finished, in variant order
    state: Any  # the final TrainState, every leaf with a leading (K,) axis (see host_params)


def run(cfg: Mapping[str, Any], run_dir: Path, overrides: Sequence[str] = ()) -> SweepResult:
    """Train every variant, write their job directories and the report."""
    grid = variants(cfg)
    with backend.use(cfg.get("backend", "auto")):
        par = loop.start(cfg)
        job = setup.build(cfg, par, variants=grid)  # data, model and the checks of a single run
        for variant in grid:
            write_job_config(run_dir / str(variant.index), cfg, variant, overrides)
        outcome = loop.train(job, cfg, par, run_dir)
    sweep_report.write(run_dir)
    return SweepResult([s for s in outcome.summaries if s is not None], outcome.state)


def write_job_config(directory: Path, cfg: Mapping[str, Any], variant: Variant, overrides: Sequence[str]) -> None:
    """`.hydra/config.yaml` and `overrides.yaml` as Hydra writes a multirun job's; a resumed
    sweep keeps those of its first start."""
    if (directory / ".hydra" / "config.yaml").exists():
        return
    (directory / ".hydra").mkdir(parents=True, exist_ok=True)
    (directory / ".hydra" / "config.yaml").write_text(yaml.safe_dump(variant_config(cfg, variant), sort_keys=False))
    (directory / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(variant_overrides(overrides, variant)))


def variant_config(cfg: Mapping[str, Any], variant: Variant) -> dict:
    return {**cfg, "seed": variant.seed, "optimizer": {**cfg["optimizer"], "learning_rate": variant.learning_rate},
            "sweep": {**cfg["sweep"], "variant": variant.index}}  # fmt: skip


def variant_overrides(overrides: Sequence[str], variant: Variant) -> list[str]:
    """The command line's overrides as this variant's own: its rate and seed instead of the grid."""
    dropped = ("sweep=", "sweep.", "optimizer.learning_rate=", "seed=")
    kept = [o for o in overrides if not o.lstrip("+~").startswith(dropped)]
    return [*kept, f"optimizer.learning_rate={variant.learning_rate}", f"seed={variant.seed}"]


def host_params(state) -> list[Any]:
    """The variants' params as K separate host pytrees (for tests and notebooks)."""
    params = jax.device_get(state.params)
    k = len(jax.tree.leaves(params)[0])
    return [jax.tree.map(lambda x: x[i], params) for i in range(k)]
