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
  the chain, whose state holds the current factor; `current_learning_rate`
  reads it.
"""

from typing import Literal

import jax
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


def current_learning_rate(
    schedule: optax.Schedule, step: int, opt_state: optax.OptState | None = None
) -> float:
    """The learning rate of the update made at `step` (0-based), for logging.

    `schedule` is the one `cnnlab.optim.build` returns. `opt_state`, the state
    returned by that update, is needed only to include a `plateau` factor.
    """
    scale = 1.0 if opt_state is None else plateau_scale(opt_state)
    return float(schedule(step)) * float(scale)
