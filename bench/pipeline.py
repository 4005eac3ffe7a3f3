"""Benchmark 3: images/s the input pipeline delivers against images/s the train step consumes.

    python -m bench.pipeline [--rounds 5]

Fashion-MNIST at 32x32 (conf/data/fashion_mnist.yaml), LeNet-5, batch 128.
The pipeline is the loop's: `data.train_batches(...)` iterated through
`grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)`, 100 batches a
round; the step is the cnnlab step (backend auto) on a device batch, 20
steps a round. Rounds alternate the two. Goal: pipeline >= 3x the step.
"""

import argparse
import time

import grain
import jax
import numpy as np

from bench import common, fashion, workloads
from cnnlab import data

BATCHES = 100


def run(rounds: int = 5) -> list[common.Figure]:
    cfg = fashion.config("model=lenet5", "trainer.batch_size=128")
    dataset = data.load(cfg["data"])
    train = dataset.splits["train"]
    step = workloads.cnnlab_step(workloads.LENET5, workloads.optimizer("adam"))
    step(5)
    pipeline_rates, step_rates = [], []
    for r in range(rounds):
        batches = data.train_batches(train, batch_size=128, seed=0, epoch=r, normalization=dataset.normalization)
        iterator = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
        next(iterator)  # the workers start
        start = time.perf_counter()
        for _ in range(BATCHES):
            batch = next(iterator)
        pipeline_rates.append(BATCHES * 128 / (time.perf_counter() - start))
        assert batch["image"].shape == (128, 32, 32, 1) and np.isfinite(batch["image"]).all()
        start = time.perf_counter()
        step(20)
        step_rates.append(20 * 128 / (time.perf_counter() - start))
    ratio = float(np.median(np.array(pipeline_rates) / np.array(step_rates)))
    return [common.Figure(
        "3", "Fashion-MNIST pipeline vs LeNet-5 train step",
        f"{np.median(pipeline_rates):,.0f} vs {np.median(step_rates):,.0f} images/s",
        batch="128", goal=">= 3x", ratio=ratio, met=ratio >= 3.0,
        notes=f"{rounds} alternating rounds; each measured alone (they share the cores in a run); "
              f"jax {jax.__version__}",
    )]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    common.report("input pipeline", run(args.rounds))
