"""The pure steps: accuracy, a training step, masked evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab import models, optim
from cnnlab.train import steps
from cnnlab.train import state as train_state


def numpy_top_k(logits, labels, k):
    """Reference: the share of random tie-breaks (every order of the tied classes) that put the label in the top k."""
    out = []
    for row, y in zip(logits, labels):
        higher, tied = int((row > row[y]).sum()), int((row == row[y]).sum())
        out.append(sum(higher + place < k for place in range(tied)) / tied)  # the label's place among its ties
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("k", [1, 5])
def test_top_k_matches_numpy_including_ties(k):
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, size=(200, 10)).astype(np.float32)  # many ties
    labels = rng.integers(0, 10, size=200)
    got = steps.top_k_correct(jnp.asarray(logits), jnp.asarray(labels), k)
    np.testing.assert_allclose(np.asarray(got), numpy_top_k(logits, labels, k), rtol=1e-6)
    # Without ties it is the usual argsort definition.
    distinct = rng.normal(size=(200, 10)).astype(np.float32)
    by_sort = np.array([y in np.argsort(-row)[:k] for row, y in zip(distinct, labels)], dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(steps.top_k_correct(distinct, labels, k)), by_sort)


def test_non_finite_and_all_equal_logits_are_not_correct():
    """A diverged model (NaN or inf logits) scores 0; a model that gives up (all-equal logits) scores chance."""
    labels = jnp.array([3, 3, 3, 3])
    logits = jnp.stack([jnp.full(10, jnp.nan), jnp.full(10, 2.0), jnp.zeros(10).at[3].set(jnp.inf),
                        jnp.zeros(10).at[3].set(1.0).at[7].set(jnp.nan)])  # fmt: skip
    assert steps.top_k_correct(logits, labels, 1).tolist() == pytest.approx([0.0, 0.1, 0.0, 0.0])
    assert steps.top_k_correct(logits, labels, 5).tolist() == pytest.approx([0.0, 0.5, 0.0, 0.0])


@pytest.fixture(scope="module")
def lenet_state():
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    tx = optim.create("adam", learning_rate=1e-3)
    return model, tx, train_state.create(model, tx, (32, 32, 1), seed=0)


def test_train_steps_lower_the_loss_on_a_fixed_batch(lenet_state):
    model, tx, state = lenet_state
    rng = np.random.default_rng(0)
    batch = {"image": rng.normal(size=(16, 32, 32, 1)).astype(np.float32), "label": rng.integers(0, 10, 16)}
    train_step = jax.jit(steps.make_train_step(model, tx, num_classes=10, learning_rate=lambda o: 1e-3))
    losses = []
    for _ in range(20):
        state, metrics = train_step(state, batch)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 20
    assert losses[-1] < 0.5 * losses[0]
    assert set(metrics) == {"step", "loss", "top1", "top5", "lr", "grad_norm", "param_norm", "update_norm"}
    assert float(metrics["grad_norm"]) > 0 and float(metrics["update_norm"]) > 0


def test_eval_step_ignores_padding(lenet_state):
    model, _, state = lenet_state
    rng = np.random.default_rng(1)
    image = rng.normal(size=(8, 32, 32, 1)).astype(np.float32)
    label = rng.integers(0, 10, 8).astype(np.int32)
    eval_step = jax.jit(steps.make_eval_step(model, num_classes=10))
    real = eval_step(state, {"image": image[:5], "label": label[:5], "mask": np.ones(5, bool)})
    padded = eval_step(state, {"image": image, "label": label, "mask": np.arange(8) < 5})
    assert int(padded["count"]) == 5
    for key in ("loss", "top1", "top5"):
        assert float(padded[key]) == pytest.approx(float(real[key]), rel=1e-5)
