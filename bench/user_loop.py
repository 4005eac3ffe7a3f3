"""A user's own training loop around `cnnlab.models.create`, against cnnlab's trainer step.

    python -m bench.user_loop [--rounds 9] [--resnet-rounds 5]

The loop below is written as the flax examples write one (a `TrainState`
with `batch_stats`, `jax.value_and_grad`, `model.apply(...,
mutable=["batch_stats"])`, an optax optimizer) and compiled with the one line
that `cnnlab.models`' docstring gives:

    train_step = cnnlab.backend.jit(train_step, donate_argnums=0)

It runs interleaved, round by round, with cnnlab's trainer step
(`workloads.cnnlab_step`: `train.setup`'s step under `parallel.create("jit")`)
on the same batch, for LeNet-5 (batch 128) and ResNet-18-CIFAR (batch 64),
and once more compiled with plain `jax.jit` to show what the one line buys:
the model traces the same code either way (the backend policy is read when
it is traced), but only `backend.jit` passes the policy's XLA options. Goal:
the user loop's step time <= 1.05x the trainer step's.
"""

import argparse
from typing import Any

import jax
import numpy as np
import optax
from flax.training import train_state

import cnnlab.backend
import cnnlab.models
from bench import common, workloads

GOAL = 1.05
CASES = [(workloads.LENET5, 20), (workloads.RESNET18_CIFAR, 1)]  # (workload, steps per timed call)


class TrainState(train_state.TrainState):
    batch_stats: Any


def user_loop(workload: workloads.Workload, jit=cnnlab.backend.jit) -> workloads.Stepper:
    """The user's loop, compiled with `jit`; a `Stepper` (n steps on one batch) for the timing."""
    model = cnnlab.models.create(workload.model, num_classes=10, **workload.options)
    variables = model.init(jax.random.key(0), np.zeros((1, *workload.input_shape), np.float32), train=False)
    state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.adam(1e-3),
                              batch_stats=variables.get("batch_stats", {}))  # fmt: skip

    def train_step(state, batch):
        def loss_fn(params):
            logits, updates = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, batch["image"],
                                             train=True, mutable=["batch_stats"])  # fmt: skip
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, updates.get("batch_stats", state.batch_stats)

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        return state.apply_gradients(grads=grads, batch_stats=batch_stats), {"loss": loss}

    train_step = jit(train_step, donate_argnums=0)  # the one line: cnnlab.backend.jit instead of jax.jit
    return workloads.Stepper(train_step, state, lambda b: b, workloads.synthetic_batch(workload)).compile()


def _round_ratios(t: dict, name: str) -> np.ndarray:
    return np.array(t[name]["times_s"]) / np.array(t["trainer"]["times_s"])


def run(rounds: int = 9, resnet_rounds: int = 5) -> list[common.Figure]:
    figures = []
    for workload, n in CASES:
        sides = {
            "trainer": workloads.cnnlab_step(workload, workloads.optimizer("adam")),
            "backend.jit": user_loop(workload),
            "jax.jit": user_loop(workload, jit=jax.jit),
        }
        r = rounds if n > 1 else resnet_rounds
        t = common.interleaved({name: (lambda s=s: s(n)) for name, s in sides.items()}, r)
        per_step = {name: t[name]["median_s"] / n * 1e3 for name in t}
        for name in ("backend.jit", "jax.jit"):
            spread = _round_ratios(t, name)
            ratio = t[name]["ratio"]
            figures.append(common.Figure(
                "user", f"{workload.label} user loop with {name} / cnnlab's trainer step",
                f"{per_step[name]:.1f} ms vs {per_step['trainer']:.1f} ms per step", batch=str(workload.batch_size),
                goal=f"<= {GOAL}" if name == "backend.jit" else "", ratio=ratio,
                met=ratio <= GOAL if name == "backend.jit" else None,
                notes=f"{r} rounds of {n} step(s), round ratios {spread.min():.3f}-{spread.max():.3f}; "
                      "Adam (optax's in the loop, optim's in the trainer)",
            ))  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--resnet-rounds", type=int, default=5)
    args = parser.parse_args()
    common.report("a user's own loop", run(args.rounds, args.resnet_rounds))
