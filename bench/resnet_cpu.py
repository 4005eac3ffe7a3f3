"""ResNet-18-CIFAR's train step with each of cnnlab's CPU paths put back to the stock code.

    python -m bench.resnet_cpu [--rounds 5]

On a single CPU device a ResNet step takes three paths that stock flax + lax
code does not (each gives the same numbers to float tolerance, and each is
tested against the stock code):

- `layers.BatchNorm` sums over (B, H, W) as matrix products (`sums="auto"`);
  the stock code is flax's BatchNorm (`sums="xla"`);
- `layers.residual_relu` at each block's output, a select that XLA stores once;
  the stock code is `nn.relu`, which XLA recomputes, with the residual sums
  behind it, in every consumer;
- `conv_cpu`'s tap forms for some parts of some convolutions
  (`conv_impl=auto`); the stock code is `conv_impl=xla`.

All variants run the cnnlab step (Adam, batch 64), side by side, round by
round; each ratio is the variant's step time over cnnlab's.
"""

import argparse
import contextlib
from collections.abc import Iterator
from functools import partial

import jax

from bench import common, workloads
from cnnlab.models import layers


@contextlib.contextmanager
def stock(batch_norm: bool = False, relu: bool = False) -> Iterator[None]:
    """Trace models with flax's BatchNorm sums and/or `nn.relu` at the block outputs."""
    saved = layers.batch_norm, layers.residual_relu
    if batch_norm:
        layers.batch_norm = lambda *args, **kwargs: partial(saved[0](*args, **kwargs), sums="xla")
    if relu:
        layers.residual_relu = jax.nn.relu
    try:
        yield
    finally:
        layers.batch_norm, layers.residual_relu = saved


VARIANTS = {  # name: (flax's BatchNorm sums, nn.relu at block outputs, conv_impl)
    "cnnlab": (False, False, "auto"),
    "flax's BatchNorm sums": (True, False, "auto"),
    "nn.relu at block outputs": (False, True, "auto"),
    "conv_impl=xla": (False, False, "xla"),
    "all three stock": (True, True, "xla"),
}


def run(rounds: int = 5) -> list[common.Figure]:
    workload, tx = workloads.RESNET18_CIFAR, workloads.optimizer("adam")
    steppers = {}
    for name, (batch_norm, relu, conv_impl) in VARIANTS.items():
        with stock(batch_norm, relu):
            steppers[name] = workloads.cnnlab_step(workload, tx, conv_impl=conv_impl)
            steppers[name](1)  # traced and compiled inside the context
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
