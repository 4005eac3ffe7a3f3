"""Small models: jit equals eager, train/eval differ only through dropout and BN,
bf16 compute keeps fp32 params, one SGD step lowers the loss.

Each model here is cheap to materialize (at most ~60k parameters). Weights are
filled with NumPy (`filled_variables`) rather than by compiling `model.init`,
which costs seconds per model on a CPU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from models_testing import abstract_init, cross_entropy, dropout_key, filled_variables

from cnnlab import models

# id: (registry name, options, per-example input shape, has dropout, has batch norm)
SMALL = {
    "mlp": ("mlp", {"hidden_sizes": (32, 16), "dropout_rate": 0.5}, (8, 8, 3), True, False),
    "typical_cnn": ("typical_cnn", {}, (28, 28, 1), True, False),
    "lenet5": ("lenet5", {}, (32, 32, 1), False, False),
    "lenet5_relu_max": ("lenet5", {"activation": "relu", "pooling": "max"}, (32, 32, 1), False, False),
    "simple_cnn_1d": ("simple_cnn", {"dims": 1}, (16, 3), False, False),
    "simple_cnn_2d": ("simple_cnn", {"dims": 2}, (16, 16, 3), False, False),
    "simple_cnn_3d": ("simple_cnn", {"dims": 3}, (8, 8, 8, 1), False, False),
    # A narrow ResNet-18 (4 filters): the small model with BatchNorm.
    "tiny_resnet": ("resnet18", {"num_filters": 4, "cifar_stem": True}, (16, 16, 3), False, True),
}
NUM_CLASSES = 4
BATCH = 8


def build(case: str, **extra):
    """The model, a fixed batch, its labels and variables."""
    name, options, input_shape, _, _ = SMALL[case]
    model = models.create(name, num_classes=NUM_CLASSES, **{**options, **extra})
    x = jnp.asarray(np.random.default_rng(2).standard_normal((BATCH, *input_shape), dtype=np.float32))
    labels = jnp.arange(BATCH) % NUM_CLASSES
    return model, x, labels, filled_variables(model, input_shape)


def forward(model, variables, x, train: bool):
    """Logits and updated batch stats, the way the trainer calls the model."""
    return model.apply(variables, x, train=train, rngs={"dropout": dropout_key()}, mutable=["batch_stats"])


# Eager runs op by op (slow for the 20-layer ResNet), so the BN model is left out here.
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("case", sorted(set(SMALL) - {"tiny_resnet"}))
def test_jit_equals_eager(case, train):
    model, x, _, variables = build(case)
    eager, _ = forward(model, variables, x, train)
    jitted, _ = jax.jit(forward, static_argnums=(0, 3))(model, variables, x, train)
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(SMALL))
def test_train_and_eval_differ_only_where_dropout_or_batch_norm_act(case):
    _, _, _, has_dropout, has_bn = SMALL[case]
    model, x, _, variables = build(case)
    eval_logits, eval_updates = forward(model, variables, x, train=False)
    train_logits, train_updates = forward(model, variables, x, train=True)
    differ = not np.allclose(train_logits, eval_logits, atol=1e-6)
    assert differ == (has_dropout or has_bn)
    if has_bn:  # training moves the running statistics; eval leaves them alone
        assert jax.tree.all(jax.tree.map(np.array_equal, eval_updates["batch_stats"], variables["batch_stats"]))
        assert not jax.tree.all(jax.tree.map(np.array_equal, train_updates["batch_stats"], variables["batch_stats"]))
    if has_dropout:  # with dropout off, the two modes agree again
        model, x, _, variables = build(case, dropout_rate=0.0)
        no_dropout = [forward(model, variables, x, train)[0] for train in (True, False)]
        np.testing.assert_allclose(*no_dropout, atol=1e-6)


@pytest.mark.parametrize("case", sorted(SMALL))
def test_bf16_compute_keeps_fp32_params(case):
    model, x, _, variables = build(case, dtype=jnp.bfloat16)
    _, abstract = abstract_init(model, SMALL[case][2])  # what model.init would create
    assert {leaf.dtype for leaf in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float32)}
    logits, _ = jax.jit(forward, static_argnums=(0, 3))(model, variables, x, True)
    assert logits.dtype == jnp.bfloat16
    assert logits.shape == (BATCH, NUM_CLASSES) and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("case", sorted(SMALL))
def test_one_sgd_step_lowers_the_loss_on_a_fixed_batch(case):
    model, x, labels, variables = build(case)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.01))  # a small step: first order holds

    def loss_fn(params):  # the same dropout mask before and after the step
        logits, _ = forward(model, {"params": params, "batch_stats": batch_stats}, x, train=True)
        return cross_entropy(logits, labels)

    loss_fn = jax.jit(loss_fn)
    before, grads = jax.value_and_grad(loss_fn)(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    after = loss_fn(optax.apply_updates(params, updates))
    assert after < before
