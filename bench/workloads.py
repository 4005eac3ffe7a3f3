"""The models, batches and train steps that the benchmarks time.

`cnnlab_step(...)` is the step a run compiles (`steps.make_train_step` under
`parallel.create("jit")`, batches placed with `par.put`, as `train.loop` does);
`handwritten_step(...)` is the minimal flax + optax loop it is compared with,
compiled with `backend.jit`. Both are traced and compiled when they are built,
under the backend policy in force then (`with backend.use(...)` around the
call picks another), and compile with that policy's XLA options unless
`xla_defaults=True` asks for XLA's own defaults.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnlab import backend, models, optim
from cnnlab.train import parallel, steps
from cnnlab.train import state as train_state


@dataclasses.dataclass(frozen=True)
class Workload:
    model: str  # registry name
    options: dict  # model options, as conf/model/<name>.yaml gives them
    input_shape: tuple[int, ...]
    batch_size: int
    label: str


LENET5 = Workload("lenet5", {"activation": "relu", "pooling": "max"}, (32, 32, 1), 128, "LeNet-5")
RESNET18_CIFAR = Workload("resnet18", {"cifar_stem": True}, (32, 32, 3), 64, "ResNet-18-CIFAR")
TYPICAL_CNN = Workload("typical_cnn", {}, (28, 28, 1), 128, "typical_cnn")
WIDE_TYPICAL_CNN = Workload("typical_cnn", {"features": (32, 64), "hidden_size": 128}, (28, 28, 1), 128,
                            "typical_cnn at widths (32, 64)")  # benchmark 5's model  # fmt: skip


def narrow(workload: Workload, num_filters: int) -> Workload:
    """ResNet-18 with stage widths num_filters x (1, 2, 4, 8) instead of 64 x (...)."""
    return dataclasses.replace(workload, options={**workload.options, "num_filters": num_filters},
                               label=f"{workload.label} (widths {num_filters}-{8 * num_filters})")  # fmt: skip


def synthetic_batch(workload: Workload, seed: int = 0, batch_size: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = batch_size or workload.batch_size
    return {
        "image": rng.standard_normal((b, *workload.input_shape), dtype=np.float32),
        "label": rng.integers(0, 10, b).astype(np.int32),
    }


def create_model(workload: Workload, **overrides: Any):
    return models.create(workload.model, num_classes=10, **{**workload.options, **overrides})


def optimizer(name: str = "adam", **hyperparameters: Any) -> optax.GradientTransformation:
    """`optim.build` as a run builds it from `optimizer=<name>` (constant schedule)."""
    hyperparameters.setdefault("learning_rate", 1e-3)
    tx, _ = optim.build({"name": name, **hyperparameters})
    return tx


class Stepper:
    """`stepper(n)` runs n train steps on the same batch and waits for the last one."""

    def __init__(self, step: Callable, state: Any, put: Callable, batch: dict[str, np.ndarray]):
        self.step, self.state, self.put, self.batch = step, state, put, batch

    def __call__(self, n: int = 1) -> None:
        metrics = None
        for _ in range(n):
            self.state, metrics = self.step(self.state, self.put(self.batch))
        jax.block_until_ready((self.state, metrics))

    def compile(self) -> "Stepper":
        """Trace and compile the step now, under the backend policy in force, not at its first timed call."""
        self.step = self.step.lower(self.state, self.put(self.batch)).compile()
        return self


def cnnlab_step(workload: Workload, tx: optax.GradientTransformation, seed: int = 0, steps_per_call: int = 1,
                xla_defaults: bool = False, **model_overrides: Any) -> Stepper:  # fmt: skip
    """The train step exactly as `train.setup.build` compiles it (no augmentation, no L1/L2)."""
    model = create_model(workload, **model_overrides)
    par = parallel.create("jit")
    if xla_defaults:
        par = dataclasses.replace(par, compiler_options=None)
    step = steps.make_train_step(model, tx, num_classes=10, learning_rate=lambda o: jnp.float32(1e-3))
    state = par.init(train_state.init_fn(model, tx, workload.input_shape), seed)
    batch = synthetic_batch(workload, seed)
    if steps_per_call > 1:
        batch = {k: np.stack([v] * steps_per_call) for k, v in batch.items()}  # (K, B, ...)
        return Stepper(par.compile_train(steps.make_multi_step(step)), state,
                       lambda b: par.put(b, batch_axis=1), batch).compile()  # fmt: skip
    return Stepper(par.compile_train(step), state, par.put, batch).compile()


def handwritten_step(workload: Workload, tx: optax.GradientTransformation, seed: int = 0, xla_defaults: bool = False,
                     **model_overrides: Any) -> Stepper:  # fmt: skip
    """The minimal flax + optax loop: loss, grad, update, nothing else."""
    model = create_model(workload, **model_overrides)
    variables = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, *workload.input_shape)), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    state = (params, batch_stats, tx.init(params))

    def step(state, batch):
        params, batch_stats, opt_state = state

        def loss_fn(params):
            logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch["image"],
                                          train=True, mutable=["batch_stats"],
                                          rngs={"dropout": jax.random.PRNGKey(0)})  # fmt: skip
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, updates.get("batch_stats", batch_stats)

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    jitted = jax.jit(step, donate_argnums=0) if xla_defaults else backend.jit(step, donate_argnums=0)
    return Stepper(jitted, state, lambda b: b, synthetic_batch(workload, seed)).compile()
