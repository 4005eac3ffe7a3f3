"""`layers.BatchNorm` (flax's BatchNorm with its sums as matrix products where the
backend policy says "dot") and `layers.residual_relu` against flax's and jax's own code."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab import backend
from cnnlab.models import layers

SHAPE = (8, 6, 5, 16)
DOT = dataclasses.replace(backend.STOCK, batch_norm="dot")  # the dot sums on any backend, the rest stock


def _variables(shape=SHAPE):
    key = jax.random.PRNGKey(0)
    features = shape[-1]
    return {
        "params": {"scale": 1 + 0.3 * jax.random.normal(jax.random.fold_in(key, 1), (features,)),
                   "bias": 0.2 * jax.random.normal(jax.random.fold_in(key, 2), (features,))},
        "batch_stats": {"mean": 0.1 * jax.random.normal(jax.random.fold_in(key, 3), (features,)),
                        "var": 1 + jax.random.uniform(jax.random.fold_in(key, 4), (features,))},
    }  # fmt: skip


def _step(module, variables, x):
    """Output, new running averages and the gradients of a loss that reads all three."""
    key = jax.random.PRNGKey(7)
    w_y = jax.random.normal(key, x.shape)
    w_mean, w_var = (jax.random.normal(jax.random.fold_in(key, i), x.shape[-1:]) for i in (1, 2))

    def loss(params, x):
        y, updates = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                                  mutable=["batch_stats"])  # fmt: skip
        stats = updates["batch_stats"]
        return jnp.sum(y * w_y) + jnp.sum(stats["mean"] * w_mean) + jnp.sum(stats["var"] * w_var), (y, stats)

    (_, (y, stats)), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(variables["params"], x)
    return {"y": y, "stats": stats, "grad_params": grads[0], "grad_x": grads[1]}


def _assert_close(got, want, tol):
    """Each leaf within `tol` of the largest value of flax's leaf."""
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
        atol = tol * float(jnp.max(jnp.abs(w)))
        np.testing.assert_allclose(g, w, rtol=0, atol=atol, err_msg=jax.tree_util.keystr(path))


def test_dot_sums_match_flax_in_training_with_gradients_and_running_averages():
    x = 3 * jax.random.normal(jax.random.PRNGKey(1), SHAPE) + 1.5  # an offset mean tests E[x^2] - E[x]^2
    variables = _variables()
    flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    dot_bn = layers.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    with backend.use(DOT):
        got = _step(dot_bn, variables, x)
        # The sums really are products: the traced step has dots and no reductions over x's size.
        text = jax.jit(lambda x: dot_bn.apply(variables, x, mutable=["batch_stats"])).lower(x).as_text()
    _assert_close(got, _step(flax_bn, variables, x), tol=2e-5)
    assert "dot_general" in text and "reduce" not in text.replace("reduce_precision", "")


def test_dot_sums_create_the_same_variables_as_flax():
    x = jnp.ones(SHAPE)
    shapes = lambda module: jax.tree.map(jnp.shape, module.init(jax.random.PRNGKey(0), x))  # noqa: E731
    with backend.use(DOT):
        ours = shapes(layers.BatchNorm(use_running_average=False))
    assert ours == shapes(nn.BatchNorm(use_running_average=False))


@pytest.mark.parametrize(
    "fields, call",
    [
        (dict(use_running_average=True), {}),  # evaluation: the running averages
        (dict(use_running_average=False, dtype=jnp.bfloat16), {}),
        (dict(use_running_average=False, use_bias=False), {}),
        (dict(use_running_average=False), dict(mask=jnp.arange(SHAPE[0])[:, None, None, None] < 5)),
    ],
    ids=["eval", "bf16", "no-bias", "mask"],
)
def test_other_cases_are_flax_code_unchanged(fields, call):
    x = jax.random.normal(jax.random.PRNGKey(2), SHAPE)
    variables = _variables()
    if fields.get("use_bias") is False:
        variables = {**variables, "params": {"scale": variables["params"]["scale"]}}
    run = lambda m: m.apply(variables, x, mutable=["batch_stats"], **call)  # noqa: E731
    want = run(nn.BatchNorm(momentum=0.9, **fields))
    with backend.use(DOT):
        got = run(layers.BatchNorm(momentum=0.9, **fields))
    jax.tree.map(lambda g, w: np.testing.assert_array_equal(np.asarray(g, np.float32), np.asarray(w, np.float32)),
                 got, want)  # fmt: skip


@pytest.mark.skipif(jax.default_backend() != "cpu" or jax.device_count() != 1, reason="auto's choice on one CPU device")
def test_auto_takes_the_dot_sums_on_one_cpu_device_and_stock_flax_s():
    x = jnp.ones(SHAPE)
    variables = _variables()

    def text(mode):
        with backend.use(mode):
            bn = layers.BatchNorm(use_running_average=False)
            return jax.jit(lambda x: bn.apply(variables, x, mutable=["batch_stats"])).lower(x).as_text()

    assert backend.auto().batch_norm == "dot"
    assert "dot_general" in text("auto") and "dot_general" not in text("stock")


def test_residual_relu_is_relu_in_values_and_gradient():
    x = jnp.array([-jnp.inf, -2.0, -0.0, 0.0, 1e-30, 3.0, jnp.inf, jnp.nan])
    np.testing.assert_array_equal(layers.residual_relu(x), jax.nn.relu(x))
    finite = x[1:6]
    grad = lambda f: jax.vmap(jax.grad(f))(finite)  # noqa: E731
    np.testing.assert_array_equal(grad(layers.residual_relu), grad(jax.nn.relu))  # 0 at 0, as jax's relu
