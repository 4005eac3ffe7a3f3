"""Pooling on XLA:CPU: `reduce_window` against the tiled view that `layers` uses.

    python -m bench.pooling [--rounds 7]

Forward + backward of a 2x2/2 pool at LeNet-5's S2 (batch 128, 28x28x6) and
VGG-A's first pool at 32 px (batch 32, 32x32x64), and the LeNet-5 Adam step
(ReLU, max-pool) both ways. `flax.linen.max_pool` / `avg_pool` reduce over
windows (`reduce_window`; the max's gradient is `select_and_scatter`);
`layers.MaxPool` / `AvgPool` reduce a (B, H/2, 2, W/2, 2, C) view when the
windows tile the input and the backend policy says `pooling="tiles"` (as
`auto` does everywhere). The ratio is the tiled form's time over flax's.
"""

import argparse
import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from bench import common, workloads
from cnnlab import backend
from cnnlab.models import layers

SHAPES = {"LeNet-5 S2": (128, 28, 28, 6), "VGG-A pool1 at 32 px": (32, 32, 32, 64)}


def fwd_bwd(pool):
    """jit(grad) of sum(pool(x) * cotangent): one forward and one backward pass, compiled as runs compile."""
    return backend.jit(jax.grad(lambda x, c: jnp.sum(pool(x) * c)))


def layer_rows(rounds: int) -> list[common.Figure]:
    figures = []
    for label, shape in SHAPES.items():
        x = jax.random.normal(jax.random.key(0), shape)
        c = jax.random.normal(jax.random.key(1), (shape[0], shape[1] // 2, shape[2] // 2, shape[3]))
        for kind, flax_pool, ours in (("max", nn.max_pool, layers.MaxPool), ("avg", nn.avg_pool, layers.AvgPool)):
            sides = {"flax": fwd_bwd(lambda x, f=flax_pool: f(x, (2, 2), (2, 2))),
                     "tiled": fwd_bwd(lambda x, m=ours: m((2, 2)).apply({}, x))}  # fmt: skip
            t = common.interleaved({k: (lambda f=f: f(x, c).block_until_ready()) for k, f in sides.items()}, rounds)
            figures.append(common.Figure(
                "pool", f"{kind}-pool 2x2/2 fwd+bwd, {label}",
                f"{t['tiled']['median_s'] * 1e3:.2f} ms vs {t['flax']['median_s'] * 1e3:.2f} ms",
                batch=str(shape[0]), ratio=t["tiled"]["ratio"], notes="tiled view vs reduce_window",
            ))  # fmt: skip
    return figures


def step_row(rounds: int) -> common.Figure:
    """The LeNet-5 Adam step under the policy `auto` (tiles), and with `pooling="window"` (flax's max_pool)."""
    tx = workloads.optimizer("adam")
    tiled = workloads.cnnlab_step(workloads.LENET5, tx)  # compiled now, with the tiled pool
    with backend.use(dataclasses.replace(backend.auto(), pooling="window")):
        windowed = workloads.cnnlab_step(workloads.LENET5, tx)
    n = 10
    t = common.interleaved({"reduce_window": lambda: windowed(n), "tiled": lambda: tiled(n)}, rounds)
    return common.Figure(
        "pool", "LeNet-5 Adam step, tiled max-pool vs reduce_window",
        f"{t['tiled']['median_s'] / n * 1e3:.1f} ms vs {t['reduce_window']['median_s'] / n * 1e3:.1f} ms",
        batch="128", ratio=t["tiled"]["ratio"], notes="the policy auto on both sides but its pooling",
    )


def run(rounds: int = 7) -> list[common.Figure]:
    return [*layer_rows(rounds), step_row(rounds)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    common.report("pooling", run(parser.parse_args().rounds))
