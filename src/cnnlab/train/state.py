"""The train state: every array a run carries from one step to the next."""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


@flax.struct.dataclass
class TrainState:
    """A pytree; the model and optimizer themselves live in the step closures."""

    step: jax.Array  # () int32, optimizer updates applied so far
    params: Any  # the model's "params" collection
    batch_stats: Any  # BatchNorm running statistics ({} for models without BN)
    opt_state: optax.OptState
    rng: jax.Array  # (2,) uint32 base key; step keys are fold_in(rng, step)


def init_fn(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...]):
    """`seed -> TrainState`: the initial state, built from `seed`.

    The parallel strategy traces it with `jax.eval_shape` and then runs it
    under `jit` with the state's shardings. The seed is an argument, not a
    constant of the program: runs that differ only in their seed run one
    compiled program (read back from the compilation cache by a later process).
    """

    def init(seed: jax.Array) -> TrainState:
        init_rng, dropout_rng = jax.random.split(jax.random.PRNGKey(seed))
        variables = model.init(
            {"params": init_rng, "dropout": dropout_rng}, jnp.zeros((1, *input_shape)), train=False
        )
        params = variables["params"]
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            rng=dropout_rng,
        )

    return init


def create(model: nn.Module, tx: optax.GradientTransformation, input_shape: tuple[int, ...], seed: int) -> TrainState:
    """The initial state on the default device."""
    return jax.jit(init_fn(model, tx, input_shape))(np.int32(seed))


def count_params(params: Any) -> int:
    """Number of trainable scalars."""
    return sum(int(x.size) for x in jax.tree.leaves(params))
