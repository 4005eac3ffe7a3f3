"""Run by tests in a subprocess with several simulated CPU devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.train.multidevice one-vs-many

prints one JSON line of results for the test to check.
"""

import json
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from cnnlab import models
from cnnlab.train import parallel, setup, steps
from cnnlab.train import state as train_state


class SmallBNNet(nn.Module):
    """Conv -> BatchNorm -> relu -> Dense: small, but with running statistics and dropout."""

    num_classes: int = 10
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name)(x)
        x = nn.relu(x).mean(axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


def batch(n=16, seed=0):
    """The global batch of step `seed`."""
    rng = np.random.default_rng(seed)
    return {"image": rng.normal(size=(n, 12, 12, 1)).astype(np.float32), "label": rng.integers(0, 10, n).astype(np.int32)}


def run_steps(par, model, n_steps=3, batches=None):
    tx = optax.sgd(0.1, momentum=0.9)
    step = steps.make_train_step(model, tx, num_classes=10, learning_rate=lambda o: 0.1,
                                 axis_name=par.axis_name)  # fmt: skip
    compiled = par.compile_train(step)
    state = par.init(train_state.init_fn(model, tx, (12, 12, 1)), seed=0)
    for i in range(n_steps):
        state, metrics = compiled(state, par.put(batch(seed=i)))
    host = jax.device_get(par.gather(state))
    return {"params": host.params, "batch_stats": host.batch_stats, "loss": float(par.metrics(metrics)["loss"])}


def max_difference(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in
               zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # fmt: skip


def one_vs_many() -> dict:
    out = {"devices": jax.device_count()}
    single = parallel.Jit(Mesh(np.array(jax.devices()[:1]), ("data",)))
    for name, model in (("bn_net", SmallBNNet()), ("resnet18", models.create("resnet18", num_classes=10,
                                                                           cifar_stem=True, num_filters=4))):
        reference = run_steps(single, model)
        for kind in ("jit", "pmap"):
            par = parallel.create(kind)
            result = run_steps(par, setup.sync_batch_norm(model, par.axis_name))  # as the trainer builds it
            out[f"{name}/{kind}"] = {
                "params": max_difference(reference["params"], result["params"]),
                "batch_stats": max_difference(reference["batch_stats"], result["batch_stats"]),
                "loss": abs(reference["loss"] - result["loss"]),
            }
    try:
        parallel.check_batch_size("trainer.batch_size", 12)
    except ValueError as error:
        out["indivisible_error"] = str(error)
    return out


def multiprocess(process_id: int, num_processes: int, port: int, strategy: str = "jit") -> dict:
    """3 steps as one process of `num_processes`, over every device of every process."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=num_processes, process_id=process_id)
    par = parallel.create(strategy)
    model, tx = setup.sync_batch_norm(SmallBNNet(), par.axis_name), optax.sgd(0.1, momentum=0.9)
    step = par.compile_train(steps.make_train_step(model, tx, num_classes=10, learning_rate=lambda o: 0.1,
                                                   axis_name=par.axis_name))  # fmt: skip
    state = par.init(train_state.init_fn(model, tx, (12, 12, 1)), seed=0)
    for i in range(3):
        global_batch = batch(seed=i)
        share = len(global_batch["label"]) // num_processes  # this process's rows of the global batch
        local = {k: v[process_id * share : (process_id + 1) * share] for k, v in global_batch.items()}
        state, metrics = step(state, par.put(local))
    host = par.gather(state)
    params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0) if isinstance(x, jax.Array) else x), host.params)
    loss = par.metrics(metrics)["loss"]
    return {"devices": jax.device_count(), "processes": jax.process_count(),
            "loss": float(np.asarray(loss.addressable_data(0) if isinstance(loss, jax.Array) else loss)),
            "params": [x.tolist() for x in jax.tree.leaves(params)]}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    numbers, words = [int(a) for a in args if a.isdigit()], [a for a in args if not a.isdigit()]
    result = {"one-vs-many": one_vs_many, "multiprocess": multiprocess}[command](*numbers, *words)
    print(json.dumps(result))
