"""Helpers shared by the model tests: abstract initialization, cheap concrete weights, a loss."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def dropout_key(seed: int = 3) -> jax.Array:
    """A dropout key of the "rbg" PRNG: on CPU it compiles in a fraction of threefry's
    time, and dropout and drop-path behave the same with either."""
    return jax.random.key(seed, impl="rbg")


def abstract_init(model: nn.Module, input_shape, train: bool = False, batch: int = 1):
    """(output shapes, variable shapes) of `model` on (batch, *input_shape), without materializing."""
    x = jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init_with_output(RNGS, x, train=train), x)


def size(tree) -> int:
    """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def filled_variables(model: nn.Module, input_shape, seed: int = 0):
    """Concrete variables with He-normal kernels, zero biases/means, unit scales/variances.

    Filled with NumPy from the abstract shapes: much cheaper on CPU than compiling
    `model.init` for a large network, and good enough for a forward pass.
    """
    _, shapes = abstract_init(model, input_shape)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "'scale'" in name or "'var'" in name:
            return jnp.ones(leaf.shape, leaf.dtype)
        if "'bias'" in name or "'mean'" in name or leaf.ndim < 2:
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.standard_normal(leaf.shape, dtype=np.float32) * np.sqrt(2.0 / fan_in), leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def cross_entropy(logits, labels) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
