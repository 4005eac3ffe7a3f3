"""The vmap sweep against K sequential runs on CPU: wall time, measured side by side.

    python -m bench.bench_vmap_sweep                    # K = 8 variants of LeNet-5 on the digits
    python -m bench.bench_vmap_sweep --k 4 --model typical_cnn --end-to-end

Two measurements, each taken in interleaved rounds (vmap, sequential, vmap,
sequential, ...) so that a shared machine's drift hits both alike; the ratio
is the median over rounds of (sequential time / vmap time), the gain:

- steps: `--steps` compiled train steps of K variants, as one vmapped call per
  step against K calls of a single run's step (compilation excluded);
- end to end (`--end-to-end`): `trainer.epochs` of the whole thing, compiling,
  evaluating and writing included: `sweep=vmap` with K learning rates against
  K `cnnlab-train` runs (vmap_sweep.run against loop.run, in this process).
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from cnnlab import data
from cnnlab.train import loop, parallel, setup, vmap_sweep


def config(model: str, k: int, epochs: int) -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    overrides = [f"model={model}", f"trainer.epochs={epochs}", "logger.progress_bar=false", "logger.tensorboard=false"]
    if model == "typical_cnn":
        overrides.append("data.image_size=28")
    with initialize_config_module("cnnlab.conf", version_base=None):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    rates = [float(r) for r in np.geomspace(1e-4, 1e-2, k)]
    cfg["sweep"] = {"name": "vmap", "learning_rates": rates, "seeds": [cfg["seed"]]}
    return cfg


def time_steps(cfg: dict, steps: int, rounds: int) -> dict:
    """Seconds for `steps` steps of all K variants: one vmapped program against K single runs."""
    par = parallel.create("jit")
    job = setup.build(cfg, par)
    program = setup.build(cfg, par, variants=vmap_sweep.variants(cfg))
    batches = data.train_batches(job.dataset.splits["train"], batch_size=job.host_batch_size, seed=0, epoch=0,
                                 normalization=job.dataset.normalization)  # fmt: skip
    placed = [par.put(batches[i % len(batches)]) for i in range(steps)]
    state = {"vmap": program.init(par)}
    singles = [job.init(par) for _ in range(program.k)]  # K independent states, as K runs hold

    def vmapped():
        for batch in placed:
            state["vmap"], metrics = program.phases[0].train_step(state["vmap"], batch)
        jax.block_until_ready(metrics)

    def sequential():
        for i in range(len(singles)):
            for batch in placed:
                singles[i], metrics = job.phases[0].train_step(singles[i], batch)
            jax.block_until_ready(metrics)

    return interleaved({"vmap": vmapped, "sequential": sequential}, rounds, warmup=1)


def time_end_to_end(cfg: dict, rounds: int) -> dict:
    """Seconds for the whole sweep: vmap_sweep.run against K loop.run, compile to summary."""
    grid = vmap_sweep.variants(cfg)
    scratch = Path(tempfile.mkdtemp(prefix="bench_vmap_"))
    counter = iter(range(10**6))

    def vmapped():
        vmap_sweep.run(cfg, scratch / f"vmap{next(counter)}")

    def sequential():
        n = next(counter)
        for v in grid:
            optimizer = {**cfg["optimizer"], "learning_rate": v.learning_rate}
            single = {**cfg, "sweep": {"name": "none"}, "optimizer": optimizer}
            loop.run(single, scratch / f"seq{n}" / str(v.index))

    return interleaved({"vmap": vmapped, "sequential": sequential}, rounds, warmup=0)


def interleaved(candidates: dict, rounds: int, warmup: int) -> dict:
    """Each candidate once per round, in turn; medians and the median per-round ratio to `vmap`."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    gain = np.median(np.array(times["sequential"]) / np.array(times["vmap"]))
    return {"vmap_s": float(np.median(times["vmap"])), "sequential_s": float(np.median(times["sequential"])),
            "gain": float(gain), "rounds": rounds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=8, help="variants (learning rates), default 8")
    parser.add_argument("--model", default="lenet5", choices=["lenet5", "typical_cnn"])
    parser.add_argument("--steps", type=int, default=50, help="train steps timed per round (default 50)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--end-to-end", action="store_true", help="also time whole 1-epoch sweeps (minutes)")
    parser.add_argument("--e2e-rounds", type=int, default=2)
    args = parser.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    cfg = config(args.model, args.k, epochs=1)
    steps = time_steps(cfg, args.steps, args.rounds)
    print(f"{args.model}, K={args.k}, batch {cfg['trainer']['batch_size']}: {args.steps} steps of every variant: "
          f"vmap {steps['vmap_s']:.3f} s, sequential {steps['sequential_s']:.3f} s, "
          f"gain x{steps['gain']:.2f} (median of {args.rounds} interleaved rounds)")  # fmt: skip
    if args.end_to_end:
        e2e = time_end_to_end(cfg, args.e2e_rounds)
        print(f"{args.model}, K={args.k}, 1 epoch end to end (compile, data, eval, files): "
              f"vmap {e2e['vmap_s']:.1f} s, sequential {e2e['sequential_s']:.1f} s, "
              f"gain x{e2e['gain']:.2f} (median of {args.e2e_rounds} rounds)")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
