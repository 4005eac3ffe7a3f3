"""Two training phases in one optimizer state: train the head, then fine-tune at a lower rate.

The lecture's steps 5 and 6: first the new head is trained on the frozen base
(`trainer.epochs`), then part or all of the base is unfrozen and everything
trainable goes on at `transfer.finetune.lr_scale` times the learning rate
(`transfer.finetune.epochs`), with a fresh optimizer, as Keras's recipe
recompiles the model with a smaller rate.

Each phase has its own compiled step, but both read and write the same
`PhasesState(head, finetune)`: phase 0 updates `head` and leaves `finetune`
as it was initialized, phase 1 the other way round. One state layout for the
whole run keeps checkpoints and resuming unchanged across the boundary. The
price: the parameters that phase 1 will train carry their (untouched)
optimizer state from the start; parameters frozen in a phase still get no
state in that phase's transform.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

from cnnlab.optim import schedules


class PhasesState(NamedTuple):
    head: optax.OptState  # phase 0's transform: the head (and whatever the strategy leaves trainable)
    finetune: optax.OptState  # phase 1's transform, initialized fresh and untouched until the boundary


def phase(head: optax.GradientTransformation, finetune: optax.GradientTransformation,
          active: int) -> optax.GradientTransformation:  # fmt: skip
    """The transform of phase `active` (0 or 1); the other phase's state passes through."""

    def init(params):
        return PhasesState(head.init(params), finetune.init(params))

    def update(updates, state, params=None, **extra):
        if active == 0:
            updates, inner = head.update(updates, state.head, params, **extra)
            return updates, state._replace(head=inner)
        updates, inner = finetune.update(updates, state.finetune, params, **extra)
        return updates, state._replace(finetune=inner)

    return optax.GradientTransformationExtraArgs(init, update)


def phases_state(opt_state: Any) -> PhasesState:
    """The PhasesState inside `opt_state` (which may be wrapped, e.g. by apply_if_finite)."""
    is_phases = lambda node: isinstance(node, PhasesState)  # noqa: E731
    return next(node for node in jax.tree.leaves(opt_state, is_leaf=is_phases) if is_phases(node))


def step_learning_rate(active: int) -> Callable:
    """`learning_rate(opt_state)` for the step metrics of phase `active`: the rate kept in
    that phase's own optimizer state (phase 1's schedule starts at the boundary, lr_scale
    included)."""
    return lambda opt_state: schedules.current_learning_rate(phases_state(opt_state)[active])


def run_learning_rate(head_schedule: Callable, finetune_schedule: Callable, boundary: int) -> Callable:
    """`learning_rate(step)` over the whole run, for the TensorBoard schedule plot."""
    return lambda step: head_schedule(step) if step < boundary else finetune_schedule(step - boundary)
