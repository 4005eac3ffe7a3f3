"""Benchmark 2: each cnnlab optimizer against its optax built-in.

    python -m bench.optimizers [--rounds 5] [--width 16]

Two figures per optimizer, each a ratio cnnlab / optax of times measured side
by side: the full ResNet-18-CIFAR train step (batch 64; `--width` narrows the
stages to w-2w-4w-8w, 16 by default, so that 14 compilations fit on a small
CPU; 64 is the real network), and the update alone (`tx.update` +
`apply_updates`) on the full-width ResNet-18's 11.2 M parameters, where the
optimizer is all there is to time. Goal: full-step ratio <= 1.03.
"""

import argparse

import jax
import jax.numpy as jnp
import optax

from bench import common, workloads

LR = 1e-3
# cnnlab name and hyperparameters -> the optax built-in computing the same update.
PAIRS = {
    "sgd": ({}, lambda: optax.sgd(LR)),
    "momentum": ({"beta": 0.9}, lambda: optax.sgd(LR, momentum=0.9)),
    "nesterov": ({"beta": 0.9}, lambda: optax.sgd(LR, momentum=0.9, nesterov=True)),
    "adagrad": ({"eps": 1e-8}, lambda: optax.adagrad(LR, initial_accumulator_value=0.0, eps=1e-8)),
    "rmsprop": ({"decay": 0.9, "eps": 1e-8}, lambda: optax.rmsprop(LR, decay=0.9, eps=1e-8)),
    "adadelta": ({"rho": 0.95, "eps": 1e-6}, lambda: optax.adadelta(LR, rho=0.95, eps=1e-6)),
    "adam": ({}, lambda: optax.adam(LR)),
}


def update_only(tx: optax.GradientTransformation, params) -> callable:
    opt_state = [tx.init(params)]
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)

    @jax.jit
    def update(params, opt_state):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = [params, opt_state[0]]

    def call():
        state[0], state[1] = update(*state)
        jax.block_until_ready(state)

    return call


def run(rounds: int = 5, width: int = 16) -> list[common.Figure]:
    figures = []
    workload = workloads.narrow(workloads.RESNET18_CIFAR, width) if width != 64 else workloads.RESNET18_CIFAR
    model = workloads.create_model(workloads.RESNET18_CIFAR)
    params = jax.jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"])()
    for name, (hyper, reference) in PAIRS.items():
        ours = workloads.optimizer(name, learning_rate=LR, **hyper)
        steps = {"optax": workloads.cnnlab_step(workload, reference()), "cnnlab": workloads.cnnlab_step(workload, ours)}
        full = common.interleaved({k: (lambda s=s: s(1)) for k, s in steps.items()}, rounds)
        alone = common.interleaved({"optax": update_only(reference(), params), "cnnlab": update_only(ours, params)},
                                   rounds=4 * rounds)  # fmt: skip
        ratio = full["cnnlab"]["ratio"]
        figures.append(common.Figure(
            "2", f"{name} vs its optax built-in, full train step",
            f"{full['cnnlab']['median_s'] * 1e3:.0f} ms vs {full['optax']['median_s'] * 1e3:.0f} ms",
            batch=f"{workload.batch_size} ({workload.label})", goal="<= 1.03", ratio=ratio, met=ratio <= 1.03,
            notes=f"update alone (11.2 M params): {alone['cnnlab']['median_s'] * 1e3:.1f} ms vs "
                  f"{alone['optax']['median_s'] * 1e3:.1f} ms, ratio {alone['cnnlab']['ratio']:.3f}",
        ))  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    common.report("optimizer cost", run(args.rounds, args.width))
