"""Benchmark 7: ResNet-50 training throughput on one GPU, bf16, synthetic data on the device.

    python -m bench.gpu_resnet50 [--batch 256] [--steps 30]

ResNet-50 (v1.5) at 224x224x3, batch 256, `trainer.dtype=bfloat16` (bf16
compute, fp32 parameters and optimizer state), SGD with momentum 0.9, the
cnnlab train step on a batch resident on the device; images/s over `--steps`
steps after 5 warm-up steps, and model FLOPs utilization at 24.5 GFLOP per
image per training step against the device's dense bf16 peak. Goal: >= 5,000
images/s on one H100. Without a GPU it records "not measured".
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import common

TRAIN_FLOPS_PER_IMAGE = 24.5e9  # 3 x 8.2 GFLOP forward (REFERENCE.md)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s (SXM)


def peak(kind: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in kind), None)


def run(batch: int = 256, steps: int = 30) -> list[common.Figure]:
    if jax.default_backend() != "gpu":
        return [common.Figure("7", "ResNet-50 bf16 training throughput, one GPU", "not measured: no GPU in this session",
                              batch=str(batch), goal=">= 5,000 images/s on one H100",
                              notes="run `python -m bench.gpu_resnet50` on a GPU machine")]  # fmt: skip
    import optax

    from cnnlab import models
    from cnnlab.train import parallel, steps
    from cnnlab.train import state as train_state

    device = jax.devices()[0]
    model = models.create("resnet50", num_classes=1000, dtype=jnp.bfloat16)
    tx = optax.sgd(0.1, momentum=0.9)
    par = parallel.create("jit")
    step = par.compile_train(steps.make_train_step(model, tx, num_classes=1000, learning_rate=lambda o: 0.1))
    state = par.init(train_state.init_fn(model, tx, (224, 224, 3)), 0)
    rng = np.random.default_rng(0)
    batch = par.put({"image": rng.standard_normal((batch, 224, 224, 3), dtype=np.float32),
                     "label": rng.integers(0, 1000, batch).astype(np.int32)})  # fmt: skip
    for _ in range(5):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        rates.append(steps * batch["image"].shape[0] / (time.perf_counter() - start))
    rate = float(np.median(rates))
    device_peak = peak(device.device_kind)
    mfu = f"MFU {rate * TRAIN_FLOPS_PER_IMAGE / device_peak:.1%}" if device_peak else "MFU: unknown peak"
    return [common.Figure(
        "7", f"ResNet-50 bf16 training throughput on {device.device_kind}", f"{rate:,.0f} images/s",
        batch=str(batch["image"].shape[0]), goal=">= 5,000 images/s on one H100",
        ratio=rate / 5000, met=rate >= 5000 if "H100" in device.device_kind else None,
        notes=f"{mfu}; median of 3 x {steps} steps; jax {jax.__version__}",
    )]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    common.report("GPU ResNet-50", run(args.batch, args.steps))
