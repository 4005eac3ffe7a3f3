"""ResNet-18-CIFAR's train step with each of cnnlab's CPU paths put back to the stock code.

    python -m bench.resnet_cpu [--rounds 5]

On a single CPU device a ResNet step takes three paths that stock flax + lax
code does not (each gives the same numbers to float tolerance, and each is
tested against the stock code):

- `layers.BatchNorm` sums over (B, H, W) as matrix products (the backend
  policy's `batch_norm="dot"`); the stock code is flax's BatchNorm
  (`batch_norm="xla"`);
- `layers.residual_relu` at each block's output, a select that XLA stores once;
  the stock code is `nn.relu`, which XLA recomputes, with the residual sums
  behind it, in every consumer;
- `conv_cpu`'s tap forms for some parts of some convolutions (the policy's
  `conv="taps"`); the stock code is `conv="xla"`.

All variants run the cnnlab step (Adam, batch 64) with the compiler options of
the backend policy `auto`, side by side, round by round; each ratio is the
variant's step time over cnnlab's.
"""

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator

import jax

from bench import common, workloads
from cnnlab import backend
from cnnlab.models import layers


@contextlib.contextmanager
def stock_relu(relu: bool) -> Iterator[None]:
    """Trace models with `nn.relu` at the block outputs (it is not a backend choice: a model's own code)."""
    saved = layers.residual_relu
    if relu:
        layers.residual_relu = jax.nn.relu
    try:
        yield
    finally:
        layers.residual_relu = saved


VARIANTS = {  # name: (changes to the policy `auto`, nn.relu at block outputs)
    "cnnlab": ({}, False),
    "flax's BatchNorm sums": ({"batch_norm": "xla"}, False),
    "nn.relu at block outputs": ({}, True),
    "XLA's convolution": ({"conv": "xla"}, False),
    "all three stock": ({"batch_norm": "xla", "conv": "xla"}, True),
}


def run(rounds: int = 5) -> list[common.Figure]:
    workload, tx = workloads.RESNET18_CIFAR, workloads.optimizer("adam")
    steppers = {}
    for name, (changes, relu) in VARIANTS.items():
        with backend.use(dataclasses.replace(backend.auto(), **changes)), stock_relu(relu):
            steppers[name] = workloads.cnnlab_step(workload, tx)  # traced and compiled inside the context
    t = common.interleaved({name: (lambda s: lambda: s(1))(s) for name, s in steppers.items()}, rounds)
    ms = {name: t[name]["median_s"] * 1e3 for name in t}
    return [
        common.Figure(
            "resnet", f"{workload.label} step, {name} / cnnlab", f"{ms[name]:.0f} ms vs {ms['cnnlab']:.0f} ms",
            batch=str(workload.batch_size), ratio=t[name]["ratio"], notes=f"Adam; {rounds} rounds of 1 step",
        )  # fmt: skip
        for name in VARIANTS
        if name != "cnnlab"
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    common.report("ResNet-18-CIFAR's CPU paths", run(args.rounds))
