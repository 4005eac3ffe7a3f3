"""Properties every optimizer must have: finite, dtype-preserving, compiled once,
injectable, composable with optax's wrappers, and convergent with its config defaults."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml
from optim_testing import LECTURE_OPTIMIZERS, SMALL_STEPS, make

from cnnlab import optim

CONF = Path(__file__).resolve().parents[2] / "conf" / "optimizer"


def small_params(dtype=jnp.float32):
    """A Flax-shaped params tree: a conv kernel, its bias and a scalar."""
    return {
        "Conv_0": {"kernel": jnp.full((3, 3, 2, 4), 0.5, dtype), "bias": jnp.zeros((4,), dtype)},
        "temperature": jnp.ones((), dtype),
    }


def random_like(params, key, scale=1.0):
    keys = jax.random.split(key, len(jax.tree.leaves(params)))
    leaves = [
        (scale * jax.random.normal(k, p.shape, jnp.float32)).astype(p.dtype)
        for k, p in zip(keys, jax.tree.leaves(params))
    ]
    return jax.tree.unflatten(jax.tree.structure(params), leaves)


def dtypes(tree):
    return jax.tree.map(lambda x: jnp.asarray(x).dtype, tree)


def wild_gradients(params, steps: int):
    """`steps` gradients for `params`, stacked: sizes from 1e-6 to 1e3, every tenth step exactly zero."""
    rng = np.random.default_rng(0)
    sizes = 10.0 ** rng.uniform(-6, 3, steps) * (np.arange(steps) % 10 != 0)

    def stacked(p):
        noise = rng.standard_normal((steps, *p.shape))
        return jnp.asarray(sizes.reshape(-1, *[1] * p.ndim) * noise, p.dtype)

    return jax.tree.map(stacked, params)


@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_finite_for_1000_steps_of_wild_gradients(name):
    tx, params = make(name), small_params()

    def step(carry, grads):
        params, state = carry
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    run = jax.jit(lambda carry, grads: jax.lax.scan(step, carry, grads)[0])
    params, state = run((params, tx.init(params)), wild_gradients(params, 1000))
    for leaf in jax.tree.leaves((params, state)):
        assert np.all(np.isfinite(np.asarray(leaf, np.float32)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_keeps_shapes_and_dtypes(name, dtype):
    tx, params = make(name), small_params(dtype)
    state = tx.init(params)
    initial_state_dtypes = dtypes(state)
    for t in range(3):
        grads = random_like(params, jax.random.key(t))
        updates, state = tx.update(grads, state, params)
        assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, params)
        assert dtypes(updates) == dtypes(params)
        params = optax.apply_updates(params, updates)
        assert dtypes(params) == jax.tree.map(lambda _: jnp.dtype(dtype), params)
        assert dtypes(state) == initial_state_dtypes  # a changing state dtype would recompile every step


@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_keeps_bfloat16_when_injected_hyperparameters_are_float32(name):
    """Mixed params make inject_hyperparams hold float32 scalars; they must not promote bf16 state.

    (The updates may come out float32, as with optax's own aliases; `optax.apply_updates`
    casts them back to the parameters' dtype.)
    """
    tx = optax.inject_hyperparams(getattr(optim, name))(**SMALL_STEPS[name])
    params = {"bf16": jnp.ones((3,), jnp.bfloat16), "f32": jnp.ones((2,), jnp.float32)}
    param_dtypes = dtypes(params)
    state = tx.init(params)
    initial_state_dtypes = dtypes(state)
    for t in range(2):
        updates, state = tx.update(random_like(params, jax.random.key(t)), state, params)
        params = optax.apply_updates(params, updates)
        assert dtypes(params) == param_dtypes
        assert dtypes(state) == initial_state_dtypes


@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_compiles_once(name):
    tx, params = make(name), small_params()
    traces = []

    @jax.jit
    def train_step(params, state, grads):
        traces.append(1)  # runs only while tracing
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for t in range(3):
        params, state = train_step(params, state, random_like(params, jax.random.key(t)))
    assert len(traces) == 1


@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_learning_rate_is_injectable(name):
    """The learning rate is readable in the state, and setting it there changes the step."""
    factory = getattr(optim, name)
    hyperparameters = SMALL_STEPS[name]
    plain, injected = factory(**hyperparameters), optax.inject_hyperparams(factory)(**hyperparameters)
    params = small_params()
    grads = random_like(params, jax.random.key(0))

    state = injected.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(hyperparameters["learning_rate"])
    plain_updates, _ = plain.update(grads, plain.init(params), params)
    updates, _ = injected.update(grads, state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), updates, plain_updates)

    state.hyperparams["learning_rate"] = jnp.asarray(3 * hyperparameters["learning_rate"])
    tripled, _ = injected.update(grads, state, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, 3 * b, rtol=1e-5), tripled, plain_updates)


@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_composes_with_optax_wrappers(name):
    tx, params = make(name), small_params()
    grads = random_like(params, jax.random.key(0))
    nan_grads = jax.tree.map(lambda g: g * jnp.nan, grads)
    labels = jax.tree.map(lambda is_kernel: "train" if is_kernel else "frozen", optim.kernels_only(params))
    multi = optax.MultiSteps(tx, every_k_schedule=2)
    guarded = optax.apply_if_finite(tx, max_consecutive_errors=3)

    @jax.jit  # one compilation for every wrapper
    def wrapped_updates(grads, nan_grads, params):
        def first(wrapper, g=grads):
            return wrapper.update(g, wrapper.init(params), params)

        multi_first, multi_state = first(multi)
        guarded_first, guarded_state = first(guarded, nan_grads)
        return {
            "alone": first(tx)[0],
            # a clip that never triggers changes nothing
            "chain": first(optax.chain(optax.clip_by_global_norm(1e9), tx))[0],
            # nothing on the first of two micro-steps, then the step on the mean gradient
            "multi_first": multi_first,
            "multi_second": multi.update(grads, multi_state, params)[0],
            # a NaN gradient is skipped, the next finite one goes through
            "guarded_first": guarded_first,
            "guarded_notfinite": guarded_state.notfinite_count,
            "guarded_second": guarded.update(grads, guarded_state, params)[0],
            # only the kernel is optimized, the rest passes through as the raw gradient
            "masked": first(optax.masked(tx, optim.kernels_only))[0],
            # the kernel gets the optimizer, everything else is frozen
            "partition": first(optax.partition({"train": tx, "frozen": optax.set_to_zero()}, labels))[0],
        }

    out = wrapped_updates(grads, nan_grads, params)
    alone = out["alone"]

    def assert_tree_close(a, b):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-12), a, b)

    def assert_tree_zero(tree):
        assert all(np.all(np.asarray(leaf) == 0) for leaf in jax.tree.leaves(tree))

    assert_tree_close(out["chain"], alone)
    assert_tree_zero(out["multi_first"])
    assert_tree_close(out["multi_second"], alone)
    assert_tree_zero(out["guarded_first"])
    assert int(out["guarded_notfinite"]) == 1
    assert_tree_close(out["guarded_second"], alone)
    assert_tree_close(out["masked"]["Conv_0"]["kernel"], alone["Conv_0"]["kernel"])
    assert_tree_close(out["masked"]["Conv_0"]["bias"], grads["Conv_0"]["bias"])
    assert_tree_close(out["partition"]["Conv_0"]["kernel"], alone["Conv_0"]["kernel"])
    assert_tree_zero(out["partition"]["temperature"])


def quadratic(x):
    """A convex quadratic with condition number 10, minimum 0 at the origin."""
    return 0.5 * (x[0] ** 2 + 10.0 * x[1] ** 2)


@pytest.mark.parametrize("name", LECTURE_OPTIMIZERS)
def test_converges_on_a_convex_quadratic_with_its_config_defaults(name):
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    tx = optim.create(config.pop("name"), **config)
    start = jnp.array([1.0, 1.0])

    def step(carry, _):
        x, state = carry
        updates, state = tx.update(jax.grad(quadratic)(x), state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), quadratic(x)

    # AdaGrad at η = 0.01 is the slowest: about 10,000 steps
    _, losses = jax.jit(lambda: jax.lax.scan(step, (start, tx.init(start)), None, length=20_000))()
    losses = np.asarray(losses)
    assert losses[0] > 1.0
    assert np.max(losses[-100:]) < 1e-3
