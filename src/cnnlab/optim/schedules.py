"""Learning-rate schedules: functions of the step count, built from optax's.

Every schedule here is an `optax.Schedule` (step -> learning rate) measured in
optimizer steps; `to_steps` converts lengths given in epochs. The lecture's
schedules:

- `constant`: η at every step;
- `step_decay`: η·factorᵏ after k whole periods (the lecture's "step decay");
- `exponential`: η·rateᵗ, the lecture's η₀e^{−kt} with rate = e^{−k};
- `cosine`: half a cosine from η down to `end_value`, after an optional linear
  warmup from 0;
- `plateau`: the lecture's annealing when the change in the objective falls
  below a threshold. It depends on the loss, not on the step, so it is not a
  schedule but a transform (`optax.contrib.reduce_on_plateau`) at the end of
  the chain, whose state holds the current factor.

`with_peak_rate` keeps a run's peak rate and the rate of its latest update in
the optimizer state; `current_learning_rate(opt_state)` reads the rate a step
used from there, plateau factor included.
"""

from collections.abc import Callable
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
import optax.contrib
from optax.contrib import ReduceLROnPlateauState

Unit = Literal["epoch", "step"]


def to_steps(length: float, unit: Unit, steps_per_epoch: int) -> int:
    """A length in epochs or steps, as a whole number of steps."""
    if unit == "epoch":
        return int(round(length * steps_per_epoch))
    return int(round(length))


def constant(learning_rate: float) -> optax.Schedule:
    """η at every step."""
    return optax.constant_schedule(learning_rate)


def step_decay(learning_rate: float, factor: float, every_steps: int) -> optax.Schedule:
    """η·factor^⌊t / every_steps⌋: multiply by `factor` once per period."""
    return optax.exponential_decay(
        init_value=learning_rate, transition_steps=every_steps, decay_rate=factor, staircase=True
    )


def exponential(
    learning_rate: float, decay_rate: float, unit_steps: int = 1, end_value: float = 0.0
) -> optax.Schedule:
    """η·decay_rate^(t / unit_steps), never below `end_value`.

    `decay_rate` is the factor per unit (one step, or one epoch of
    `unit_steps` steps); the lecture's η₀e^{−kt} is decay_rate = e^{−k}.
    """
    return optax.exponential_decay(
        init_value=learning_rate,
        transition_steps=unit_steps,
        decay_rate=decay_rate,
        end_value=end_value,
    )


def cosine(
    learning_rate: float, decay_steps: int, warmup_steps: int = 0, end_value: float = 0.0
) -> optax.Schedule:
    """Linear warmup from 0 to η over `warmup_steps`, then half a cosine down to `end_value`.

    `decay_steps` is the whole length, warmup included; after it the rate stays
    at `end_value` (Loshchilov & Hutter, SGDR, 2017, without restarts).
    """
    if warmup_steps == 0:
        return optax.cosine_decay_schedule(
            init_value=learning_rate,
            decay_steps=decay_steps,
            alpha=end_value / learning_rate if learning_rate else 0.0,
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=decay_steps,
        end_value=end_value,
    )


def plateau(
    factor: float = 0.5,
    patience: int = 1,
    rtol: float = 1e-3,
    atol: float = 0.0,
    cooldown: int = 0,
    min_scale: float = 0.0,
    steps_per_epoch: int = 1,
) -> optax.GradientTransformationExtraArgs:
    """Multiply the updates by `factor` when the epoch's mean loss stops improving.

    The transform averages the `value=` passed to each `update` over
    `steps_per_epoch` steps (one epoch of training losses). After each epoch,
    the epoch is an improvement when its mean is below (1 − rtol)·best − atol;
    after `patience` epochs without one the scale is multiplied by `factor`
    (not below `min_scale`), then `cooldown` epochs are ignored. `patience=1`
    is the lecture's rule: anneal as soon as one epoch changes the objective by
    less than the threshold.

    Place it last in the chain and pass the batch loss to every update:
    `tx.update(grads, opt_state, params, value=loss)`.
    """
    return optax.contrib.reduce_on_plateau(
        factor=factor,
        patience=patience,
        rtol=rtol,
        atol=atol,
        cooldown=cooldown,
        accumulation_size=steps_per_epoch,
        min_scale=min_scale,
    )


def plateau_scale(opt_state: optax.OptState) -> jax.Array | float:
    """The factor a `plateau` transform in `opt_state` applies now, 1.0 if there is none."""
    is_plateau = lambda node: isinstance(node, ReduceLROnPlateauState)  # noqa: E731
    for node in jax.tree.leaves(opt_state, is_leaf=is_plateau):
        if is_plateau(node):
            return node.scale
    return 1.0


class PeakRateState(NamedTuple):
    """`with_peak_rate`'s state: the peak rate lives here, not in the update's closure."""

    peak: jax.Array  # () float32, the schedule's peak (or constant) rate: a sweep variant's own
    rate: jax.Array  # () float32, the scheduled rate of the latest update (before any plateau factor)
    count: jax.Array  # () int32, updates so far
    inner: optax.OptState  # the optimizer's own state


def with_peak_rate(
    factory: Callable[..., optax.GradientTransformation], peak: float, shape: optax.Schedule, **hyperparameters
) -> optax.GradientTransformationExtraArgs:
    """`factory(learning_rate=lambda t: peak * shape(t), **hyperparameters)`, with `peak` in the state.

    Two things follow from keeping the peak rate (and the rate of the latest
    update) in the optimizer state instead of a closure, as
    `optax.inject_hyperparams` keeps its hyperparameters:
    - every optimizer built this way, whatever its peak, has the same `update`
      function, so one compiled step serves any rate, and `jax.vmap` over
      states with different peaks trains a learning-rate sweep in one program;
    - the rate a step used is read from the state (`current_learning_rate`),
      in one place for every run.
    """

    def init(params):
        inner = factory(learning_rate=lambda count: peak * shape(count), **hyperparameters).init(params)
        return PeakRateState(jnp.asarray(peak, jnp.float32), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), inner)

    def update(updates, state, params=None, **extra):
        tx = optax.with_extra_args_support(
            factory(learning_rate=lambda count: state.peak * shape(count), **hyperparameters)
        )
        updates, inner = tx.update(updates, state.inner, params, **extra)
        rate = (state.peak * shape(state.count)).astype(jnp.float32)
        return updates, PeakRateState(state.peak, rate, optax.safe_increment(state.count), inner)

    return optax.GradientTransformationExtraArgs(init, update)


def _peak_rate_states(opt_state: optax.OptState) -> list[PeakRateState]:
    is_peak = lambda node: isinstance(node, PeakRateState)  # noqa: E731
    return [node for node in jax.tree.leaves(opt_state, is_leaf=is_peak) if is_peak(node)]


def set_peak_rate(opt_state: optax.OptState, peak: jax.Array | float) -> optax.OptState:
    """`opt_state` with every `PeakRateState`'s peak replaced (a sweep variant's rate)."""
    is_peak = lambda node: isinstance(node, PeakRateState)  # noqa: E731
    return jax.tree.map(lambda node: node._replace(peak=jnp.asarray(peak, jnp.float32)) if is_peak(node) else node,
                        opt_state, is_leaf=is_peak)  # fmt: skip


def current_learning_rate(opt_state: optax.OptState) -> jax.Array:
    """The learning rate of the latest update that produced `opt_state`: the scheduled rate
    kept by `with_peak_rate`, times the factor of a `plateau` transform if there is one.

    This is the rate every run logs. `opt_state` must hold exactly one
    `PeakRateState` (as `cnnlab.optim.build` makes it); for a transfer run's
    two phases, pass the active phase's state.
    """
    found = _peak_rate_states(opt_state)
    if len(found) != 1:
        raise ValueError(f"current_learning_rate needs an optimizer state with one scheduled rate "
                         f"(cnnlab.optim.build's); this one has {len(found)}")  # fmt: skip
    return found[0].rate * plateau_scale(opt_state)
