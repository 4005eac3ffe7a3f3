"""XLA:CPU's YNNPACK library calls against the options cnnlab compiles with.

    python -m bench.xla_options [--rounds 5]

jaxlib 0.10's XLA:CPU hands f32 convolutions, dots and reductions to YNNPACK
by default. cnnlab compiles its steps with those library fusions off (the
backend policy `auto`'s options on the CPU, `backend.compiler_options()`), so
XLA's own (Eigen) convolution and its emitted loops run instead. This times
the cnnlab train step (Adam, the policy `auto`'s code) both ways, side by
side, and the bare 3x3 convolution of ResNet-18-CIFAR's 32x32x64 stage, where
the difference is largest.
"""

import argparse

import jax
from jax import lax

from bench import common, workloads
from cnnlab import backend

def steps(rounds: int) -> list[common.Figure]:
    figures = []
    for workload, n in ((workloads.LENET5, 10), (workloads.WIDE_TYPICAL_CNN, 5), (workloads.RESNET18_CIFAR, 1)):
        tx = workloads.optimizer("adam")
        cnnlab = workloads.cnnlab_step(workload, tx)
        defaults = workloads.cnnlab_step(workload, tx, xla_defaults=True)
        t = common.interleaved({"cnnlab options": lambda: cnnlab(n), "XLA defaults": lambda: defaults(n)}, rounds)
        ms = {name: t[name]["median_s"] / n * 1e3 for name in t}
        figures.append(common.Figure(
            "xla", f"{workload.label} step, XLA's defaults (YNNPACK) / cnnlab's options",
            f"{ms['XLA defaults']:.1f} ms vs {ms['cnnlab options']:.1f} ms", batch=str(workload.batch_size),
            ratio=t["XLA defaults"]["ratio"], notes=f"Adam, backend auto's code; {rounds} rounds of {n} step(s)",
        ))  # fmt: skip
    return figures


def layer(rounds: int) -> common.Figure:
    """The weight gradient of the 3x3 convolution at 32x32x64, batch 64."""
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (64, 32, 32, 64))
    w = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 64, 64)) * 0.05
    conv = lambda w: lax.conv_general_dilated(x, w, (1, 1), [(1, 1)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
    dy = jax.random.normal(jax.random.fold_in(key, 2), (64, 32, 32, 64))
    weight_grad = lambda w, dy: jax.vjp(conv, w)[1](dy)[0]  # noqa: E731
    cnnlab = backend.jit(weight_grad)  # the policy auto's options: on the CPU, YNNPACK's fusions off
    defaults = jax.jit(weight_grad)
    t = common.interleaved({"cnnlab options": lambda: common.block(cnnlab(w, dy)),
                            "XLA defaults": lambda: common.block(defaults(w, dy))}, rounds)  # fmt: skip
    ms = {name: t[name]["median_s"] * 1e3 for name in t}
    return common.Figure(
        "xla", "weight gradient of the 3x3 convolution at 32x32x64, XLA's defaults / cnnlab's options",
        f"{ms['XLA defaults']:.0f} ms vs {ms['cnnlab options']:.0f} ms", batch="64", ratio=t["XLA defaults"]["ratio"],
        notes="lax.conv_general_dilated's own gradient, no tap forms",
    )


def run(rounds: int = 5) -> list[common.Figure]:
    return [layer(rounds), *steps(rounds)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    common.report("XLA:CPU options", run(args.rounds))
