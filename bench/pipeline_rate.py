"""Input pipeline rate against the train step's consumption (issue 5's goal: >= 3x).

    python bench/pipeline_rate.py [--rounds 5]

Fashion-MNIST at 32x32 (the Debian IDX files), LeNet-5 (relu, max) with Adam,
batch 128. Rounds alternate the pipeline (100 batches through the loop's
grain iterator) and the jitted train step (20 steps on a device batch), so
both see the same machine load; the ratio is the median of per-round ratios.
"""

import argparse
import os
import statistics
import time

import grain
import jax
import numpy as np

from cnnlab import backend, data, models, optim
from cnnlab.train import state as train_state
from cnnlab.train import steps

BATCH = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", default=os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")))
    args = parser.parse_args()

    dataset = data.load({
        "name": "fashion_mnist", "data_dir": args.data_dir, "dir": "/usr/share/datasets/fashion-mnist",
        "image_size": 32, "channels": 1, "num_classes": 10, "val_fraction": 0.1, "split": {"seed": 0},
        "kfold": {"k": None, "fold": 0}, "train_subset": None, "normalize": "zscore", "in_memory": "auto",
    })  # fmt: skip
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    tx, _ = optim.build({"name": "adam", "learning_rate": 1e-3})
    state = train_state.create(model, tx, (32, 32, 1), seed=0)
    step = backend.jit(steps.make_train_step(model, tx, num_classes=10), donate_argnums=0)
    batches = data.train_batches(dataset.splits["train"], batch_size=BATCH, seed=0, epoch=0,
                                 normalization=dataset.normalization)  # fmt: skip
    device_batch = jax.device_put(batches[0])
    state, metrics = step(state, device_batch)  # compile
    jax.block_until_ready(metrics)

    ratios, pipeline_rates, step_rates = [], [], []
    for r in range(args.rounds):
        iterator = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))
        start = time.perf_counter()
        for _ in range(100):
            next(iterator)
        pipeline_rates.append(100 * BATCH / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(20):
            state, metrics = step(state, device_batch)
        jax.block_until_ready(metrics)
        step_rates.append(20 * BATCH / (time.perf_counter() - start))
        ratios.append(pipeline_rates[-1] / step_rates[-1])
    print(f"pipeline {statistics.median(pipeline_rates):,.0f} images/s, train step {statistics.median(step_rates):,.0f} "
          f"images/s, ratio {statistics.median(ratios):.1f}x (goal >= 3x), load {os.getloadavg()[0]:.1f}, "
          f"{args.rounds} rounds, jax {jax.__version__}, {jax.devices()[0].platform}")  # fmt: skip


if __name__ == "__main__":
    main()
