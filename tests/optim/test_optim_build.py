"""`optim.build`: config dicts in, the run's transform and learning-rate schedule out."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnlab import optim

SGD = {"name": "sgd", "learning_rate": 0.1}


def learning_rates_applied(tx, steps: int, losses=None) -> np.ndarray:
    """The learning rate `tx` applied at each step: −update / gradient for a unit gradient, params 0."""
    params = {"kernel": jnp.zeros((2,))}
    grads = {"kernel": jnp.ones((2,))}
    losses = jnp.zeros(steps) if losses is None else jnp.asarray(losses, jnp.float32)

    def step(state, loss):
        updates, state = tx.update(grads, state, params, value=loss)
        return state, -updates["kernel"][0]

    return np.asarray(jax.jit(lambda ls: jax.lax.scan(step, tx.init(params), ls)[1])(losses))


def test_step_decay_in_epochs_drives_the_applied_learning_rate():
    schedule = {"name": "step_decay", "factor": 0.1, "every": 2, "unit": "epoch"}
    tx, lr = optim.build(SGD, schedule, steps_per_epoch=5)
    expected = [0.1] * 10 + [0.01] * 10 + [0.001] * 5
    np.testing.assert_allclose([lr(t) for t in range(25)], expected, rtol=1e-6)
    np.testing.assert_allclose(learning_rates_applied(tx, 25), expected, rtol=1e-6)


def test_step_decay_in_steps():
    schedule = {"name": "step_decay", "factor": 0.5, "every": 3, "unit": "step"}
    _, lr = optim.build(SGD, schedule, steps_per_epoch=100)
    np.testing.assert_allclose([lr(t) for t in (0, 2, 3, 6)], [0.1, 0.1, 0.05, 0.025], rtol=1e-6)


def test_exponential_decays_by_the_rate_per_epoch():
    schedule = {"name": "exponential", "decay_rate": 0.5, "unit": "epoch", "end_value": 0.0}
    _, lr = optim.build(SGD, schedule, steps_per_epoch=4)
    np.testing.assert_allclose([lr(0), lr(2), lr(4), lr(8)], [0.1, 0.1 * 0.5**0.5, 0.05, 0.025], rtol=1e-6)


def test_cosine_with_warmup():
    schedule = {"name": "cosine", "length": 10, "warmup": 2, "end_value": 0.001, "unit": "epoch"}
    _, lr = optim.build(SGD, schedule, steps_per_epoch=10)
    assert lr(0) == pytest.approx(0.0)
    assert lr(10) == pytest.approx(0.05)  # halfway up the warmup
    assert lr(20) == pytest.approx(0.1)  # peak
    assert lr(60) == pytest.approx(0.001 + 0.5 * (0.1 - 0.001), rel=1e-5)  # halfway down
    assert lr(100) == pytest.approx(0.001) and lr(500) == pytest.approx(0.001)


def test_cosine_without_warmup_starts_at_the_learning_rate():
    schedule = {"name": "cosine", "length": 100, "warmup": 0, "end_value": 0.0, "unit": "step"}
    _, lr = optim.build(SGD, schedule, steps_per_epoch=7)
    assert lr(0) == pytest.approx(0.1) and lr(50) == pytest.approx(0.05) and lr(100) == pytest.approx(0.0)


PLATEAU = {"name": "plateau", "factor": 0.5, "patience": 1, "rtol": 1e-3, "atol": 0.0, "cooldown": 0,
           "min_scale": 0.0}  # fmt: skip


def test_plateau_halves_the_learning_rate_after_an_epoch_without_improvement():
    tx, lr = optim.build(SGD, PLATEAU, steps_per_epoch=4)
    # epoch means: 3.0 (improves on inf), 2.0 (improves), 2.0 (flat: anneal), 1.0 (improves)
    losses = [3.0] * 4 + [2.0] * 4 + [2.0] * 4 + [1.0] * 4
    applied = learning_rates_applied(tx, 16, losses)
    # the factor changes on the last step of the flat epoch and holds afterwards
    np.testing.assert_allclose(applied, [0.1] * 11 + [0.05] * 5, rtol=1e-6)


def test_current_learning_rate_includes_the_plateau_factor():
    tx, lr = optim.build(SGD, PLATEAU, steps_per_epoch=1)
    params, grads = {"kernel": jnp.zeros(2)}, {"kernel": jnp.ones(2)}
    state = tx.init(params)
    for loss in [1.0, 1.0, 1.0]:
        _, state = tx.update(grads, state, params, value=loss)
    assert float(optim.current_learning_rate(state)) == pytest.approx(0.025)  # halved twice
    assert lr(2) == pytest.approx(0.1)  # the schedule alone


def test_the_logged_rate_is_the_rate_of_the_latest_update():
    tx, lr = optim.build(SGD, {"name": "step_decay", "factor": 0.5, "every": 2, "unit": "step"})
    params, grads = {"kernel": jnp.zeros(2)}, {"kernel": jnp.ones(2)}
    state, logged = tx.init(params), []
    for _ in range(5):
        updates, state = tx.update(grads, state, params)
        logged.append(float(optim.current_learning_rate(state)))
        assert float(-updates["kernel"][0]) == pytest.approx(logged[-1])  # SGD: the update is -rate * grad
    assert logged == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_one_update_function_serves_every_peak_rate():
    """The peak rate lives in the state: a state given another peak trains at that rate."""
    tx, _ = optim.build(SGD, {"name": "step_decay", "factor": 0.5, "every": 2, "unit": "step"})
    other, _ = optim.build({**SGD, "learning_rate": 0.3}, {"name": "step_decay", "factor": 0.5, "every": 2,
                                                             "unit": "step"})  # fmt: skip
    params, grads = {"kernel": jnp.zeros(2)}, {"kernel": jnp.ones(2)}
    ours = optim.schedules.set_peak_rate(tx.init(params), 0.3)
    theirs = other.init(params)
    for _ in range(3):
        a, ours = jax.jit(tx.update)(grads, ours, params)
        b, theirs = other.update(grads, theirs, params)
        np.testing.assert_array_equal(a["kernel"], b["kernel"])


def test_regularizers_are_chained_in_front():
    tx, _ = optim.build(SGD, None, l1=0.01, l2=0.02, steps_per_epoch=1)
    params = {"kernel": jnp.array([2.0, -3.0]), "bias": jnp.array([5.0])}
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    expected_kernel = -0.1 * (1.0 + 0.01 * np.sign([2.0, -3.0]) + 2 * 0.02 * np.array([2.0, -3.0]))
    np.testing.assert_allclose(updates["kernel"], expected_kernel, rtol=1e-6)
    np.testing.assert_allclose(updates["bias"], [-0.1], rtol=1e-6)


def bad_optimizer(name, **hyperparameters):
    return {"optimizer": {"name": name, **hyperparameters}}


def bad_schedule(name, **keys):
    return {"schedule": {"name": name, **keys}}


EPOCHS = {"unit": "epoch"}
COSINE = {"warmup": 0, "end_value": 0.0, "unit": "epoch"}
BAD_CONFIGS = [
    (bad_optimizer("adamm", learning_rate=0.1), "unknown optimizer 'adamm'; known optimizers: adadelta, adagrad, adam,"),
    ({"optimizer": {"learning_rate": 0.1}}, "optimizer.name is missing"),
    (bad_optimizer("nesterov", learning_rate=-0.1), "optimizer.learning_rate must be >= 0, got -0.1"),
    (bad_optimizer("momentum"), "optimizer.learning_rate is missing"),
    (bad_optimizer("momentum", learning_rate=0.1, beta=1.0), "optimizer.beta must be in [0, 1), got 1.0"),
    (bad_optimizer("rmsprop", learning_rate=0.1, decay=-0.5), "optimizer.decay must be in [0, 1), got -0.5"),
    (bad_optimizer("adadelta", learning_rate=1.0, rho=1.5), "optimizer.rho must be in [0, 1), got 1.5"),
    (bad_optimizer("adam", learning_rate=0.1, b2=1.0), "optimizer.b2 must be in [0, 1), got 1.0"),
    (bad_optimizer("optax/sgd", learning_rate=0.1, momentum=1.2), "optimizer.momentum must be in [0, 1)"),
    (bad_optimizer("adam", learning_rate=0.1, eps="1e-8"), "optimizer.eps must be a number, got '1e-8'"),
    (
        bad_optimizer("adam", learning_rate=0.1, beta=0.9),
        "optimizer.beta is not a hyperparameter of adam; it takes: learning_rate, b1, b2, eps",
    ),
    ({"l1": -1.0}, "l1 must be >= 0, got -1.0"),
    ({"l2": -0.01}, "l2 must be >= 0, got -0.01"),
    ({"steps_per_epoch": 0}, "steps_per_epoch must be a whole number >= 1, got 0"),
    (
        bad_schedule("linear"),
        "unknown schedule 'linear'; known schedules: constant, step_decay, exponential, cosine, plateau",
    ),
    (bad_schedule("step_decay", factor=1.5, every=1, **EPOCHS), "schedule.factor must be in (0, 1], got 1.5"),
    (bad_schedule("step_decay", factor=0.5, **EPOCHS), "schedule.every is missing"),
    (bad_schedule("step_decay", factor=0.5, every=1, unit="hour"), "schedule.unit must be 'epoch' or 'step', got 'hour'"),
    (bad_schedule("constant", every=3), "schedule.every is not a key of schedule constant"),
    (
        bad_schedule("cosine", length="${trainer.epochs}", **COSINE),  # an interpolation left unresolved
        "schedule.length must be a number, got '${trainer.epochs}'",
    ),
    (
        bad_schedule("cosine", length=2, **{**COSINE, "warmup": 2}),
        "schedule.warmup (20 steps) must be shorter than schedule.length (20 steps)",
    ),
    ({"schedule": {**PLATEAU, "patience": 0}}, "schedule.patience must be a whole number >= 1, got 0"),
    ({"schedule": {**PLATEAU, "factor": 1.0}}, "schedule.factor must be in (0, 1), got 1.0"),
    ({"schedule": {**PLATEAU, "cooldown": 1.5}}, "schedule.cooldown must be a whole number >= 0, got 1.5"),
    (bad_optimizer("optax/adadelta", learning_rate=None), "optimizer.learning_rate must be a number, got None"),
]


@pytest.mark.parametrize("kwargs, message", BAD_CONFIGS)
def test_bad_config_names_the_key(kwargs, message):
    arguments = {"optimizer": SGD, "schedule": None, "l1": 0.0, "l2": 0.0, "steps_per_epoch": 10, **kwargs}
    with pytest.raises(ValueError) as error:
        optim.build(**arguments)
    assert message in str(error.value)


def test_build_gives_the_same_steps_as_the_alias():
    adam = {"name": "adam", "learning_rate": 0.01, "b1": 0.8, "b2": 0.99, "eps": 1e-8}
    tx, _ = optim.build(adam, None, steps_per_epoch=3)
    reference = optim.adam(0.01, b1=0.8, b2=0.99, eps=1e-8)
    params = jnp.zeros(3)
    state, reference_state = tx.init(params), reference.init(params)
    for g in np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32):
        updates, state = tx.update(jnp.asarray(g), state, params)
        expected, reference_state = reference.update(jnp.asarray(g), reference_state, params)
        np.testing.assert_allclose(updates, expected, rtol=1e-6)
    assert isinstance(tx, optax.GradientTransformation)
