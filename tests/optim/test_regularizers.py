"""L1 and L2 as gradient transformations against jax.grad of the penalty added to the loss."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import optim


class TinyNet(nn.Module):
    """conv -> batch norm -> dense: kernels, biases and normalization scales, Flax's names."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(4, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=True)(x)
        return nn.Dense(3)(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def params():
    variables = TinyNet().init(jax.random.key(0), jnp.ones((1, 5, 5, 2)))
    # random values everywhere, so that no weight sits at sign(0) and biases are nonzero
    leaves, treedef = jax.tree.flatten(variables["params"])
    keys = jax.random.split(jax.random.key(1), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])


def kernel_penalty(params, strength: float, q: int):
    """λ Σ|w|^q over the conv and dense kernels, written out by name."""
    kernels = [params["Conv_0"]["kernel"], params["Dense_0"]["kernel"]]
    return strength * sum(jnp.sum(jnp.abs(w) ** q) for w in kernels)


@pytest.mark.parametrize("regularizer, q", [(optim.l1, 1), (optim.l2, 2)], ids=["l1", "l2"])
def test_regularizer_adds_the_gradient_of_the_penalty(params, regularizer, q):
    strength = 0.03
    grads = jax.tree.map(lambda w: jnp.cos(w), params)  # any loss gradient
    tx = regularizer(strength)
    regularized, _ = tx.update(grads, tx.init(params), params)
    expected = jax.tree.map(jnp.add, grads, jax.grad(kernel_penalty)(params, strength, q))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), regularized, expected)


@pytest.mark.parametrize("regularizer", [optim.l1, optim.l2], ids=["l1", "l2"])
def test_default_mask_leaves_biases_and_normalization_alone(params, regularizer):
    grads = jax.tree.map(jnp.zeros_like, params)
    tx = regularizer(0.1)
    regularized, _ = tx.update(grads, tx.init(params), params)
    left_alone = [("Conv_0", "bias"), ("Dense_0", "bias"), ("BatchNorm_0", "scale"), ("BatchNorm_0", "bias")]
    for layer, leaf in left_alone:
        assert np.all(np.asarray(regularized[layer][leaf]) == 0), f"{layer}/{leaf} was regularized"
    for layer in ("Conv_0", "Dense_0"):
        assert np.all(np.asarray(regularized[layer]["kernel"]) != 0), f"{layer}/kernel was not regularized"


def test_kernels_only_marks_exactly_the_kernels(params):
    mask = optim.kernels_only(params)
    marked = {"/".join(str(k.key) for k in path) for path, m in jax.tree_util.tree_leaves_with_path(mask) if m}
    assert marked == {"Conv_0/kernel", "Dense_0/kernel"}


def test_custom_mask_regularizes_what_it_marks(params):
    everything = jax.tree.map(lambda _: True, params)
    tx = optim.l2(0.5, mask=everything)
    grads = jax.tree.map(jnp.zeros_like, params)
    regularized, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(regularized["Conv_0"]["bias"], params["Conv_0"]["bias"], rtol=1e-6)  # 2·0.5·w


def test_l2_before_sgd_descends_the_penalized_cost(params):
    learning_rate, strength = 0.1, 0.01
    tx = optax.chain(optim.l2(strength), optim.sgd(learning_rate))
    grads = jax.tree.map(jnp.sin, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    kernel = params["Dense_0"]["kernel"]
    expected = -learning_rate * (grads["Dense_0"]["kernel"] + 2 * strength * kernel)
    np.testing.assert_allclose(updates["Dense_0"]["kernel"], expected, rtol=1e-6)
    np.testing.assert_allclose(updates["Dense_0"]["bias"], -learning_rate * grads["Dense_0"]["bias"], rtol=1e-6)


def test_regularizers_keep_bfloat16(params):
    bf16_params = jax.tree.map(lambda w: w.astype(jnp.bfloat16), params)
    tx = optax.inject_hyperparams(optim.l2)(strength=0.1)  # the injected strength is a float32 array
    updates, _ = tx.update(bf16_params, tx.init(bf16_params), bf16_params)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))


def test_regularizer_without_params_says_so(params):
    tx = optim.l1(0.1)
    with pytest.raises(ValueError, match="need the params"):
        tx.update(params, tx.init(params))


def test_penalty_value_is_the_term_the_regularizers_differentiate(params):
    value = optim.penalty(0.03, 0.02)(params)
    expected = kernel_penalty(params, 0.03, 1) + kernel_penalty(params, 0.02, 2)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    grads = jax.tree.map(jnp.zeros_like, params)
    tx = optax.chain(optim.l1(0.03), optim.l2(0.02))
    added, _ = tx.update(grads, tx.init(params), params)
    for got, want in zip(jax.tree.leaves(added), jax.tree.leaves(jax.grad(optim.penalty(0.03, 0.02))(params))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
