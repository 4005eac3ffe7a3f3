"""From plain config dicts to the training loop's optimizer, checked at config time.

The training loop calls `build` once with the `optimizer` and `schedule`
config groups (as plain dicts) and the top-level `l1` and `l2`, and gets the
whole transform and the schedule it logs:

    tx, schedule = optim.build(
        optimizer={"name": "nesterov", "learning_rate": 0.05, "beta": 0.9},
        schedule={"name": "step_decay", "factor": 0.1, "every": 30, "unit": "epoch"},
        l1=0.0, l2=1e-4, steps_per_epoch=469,
    )

Bad values fail here, before any compilation, with the offending key in the
message. Nothing in this module imports Hydra.
"""

import inspect
import numbers
from typing import Any, Callable, Mapping

import optax

from cnnlab.optim import regularizers, registry, schedules

# Hyperparameters that are decay rates: they must lie in [0, 1).
_DECAY_KEYS = frozenset({"beta", "decay", "rho", "b1", "b2", "momentum"})
# Hyperparameters that are sizes or strengths: they must be >= 0.
_NON_NEGATIVE_KEYS = frozenset(
    {"learning_rate", "eps", "eps_root", "initial_accumulator", "initial_accumulator_value", "weight_decay"}
)

SCHEDULE_NAMES = ("constant", "step_decay", "exponential", "cosine", "plateau")


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{key} must be a number, got {value!r}")
    return value


def _whole(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{key} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _non_negative(key: str, value: Any) -> float:
    if _number(key, value) < 0:
        raise ValueError(f"{key} must be >= 0, got {value}")
    return value


def _positive(key: str, value: Any) -> float:
    if _number(key, value) <= 0:
        raise ValueError(f"{key} must be > 0, got {value}")
    return value


def _decay(key: str, value: Any) -> float:
    if not 0 <= _number(key, value) < 1:
        raise ValueError(f"{key} must be in [0, 1), got {value}")
    return value


def _factor(key: str, value: Any, *, allow_one: bool = True) -> float:
    _number(key, value)
    upper_ok = value <= 1 if allow_one else value < 1
    if not (0 < value and upper_ok):
        raise ValueError(f"{key} must be in (0, {'1]' if allow_one else '1)'}, got {value}")
    return value


def _check_optimizer_hyperparameters(name: str, hyperparameters: Mapping[str, Any]) -> None:
    """Range checks by key name, then the keys against the factory's signature."""
    if "learning_rate" not in hyperparameters:
        raise ValueError("optimizer.learning_rate is missing")
    _non_negative("optimizer.learning_rate", hyperparameters["learning_rate"])
    for key, value in hyperparameters.items():
        if value is None or isinstance(value, bool):
            continue  # e.g. optax/sgd's momentum: null, eps_in_sqrt: false
        if key in _DECAY_KEYS:
            _decay(f"optimizer.{key}", value)
        elif key in _NON_NEGATIVE_KEYS:
            _non_negative(f"optimizer.{key}", value)
    accepted = inspect.signature(registry.get(name)).parameters
    for key in hyperparameters:
        if key not in accepted:
            raise ValueError(
                f"optimizer.{key} is not a hyperparameter of {name}; it takes: {', '.join(accepted)}"
            )


class _ScheduleKeys:
    """The keys of a schedule config, taken one at a time, so leftovers can be reported."""

    def __init__(self, config: Mapping[str, Any]):
        self.name = config.get("name")
        self._rest = {key: value for key, value in config.items() if key != "name"}

    def take(self, key: str) -> Any:
        if key not in self._rest:
            raise ValueError(f"schedule.{key} is missing (schedule {self.name})")
        return self._rest.pop(key)

    def take_unit(self) -> schedules.Unit:
        unit = self.take("unit")
        if unit not in ("epoch", "step"):
            raise ValueError(f"schedule.unit must be 'epoch' or 'step', got {unit!r}")
        return unit

    def finish(self) -> None:
        if self._rest:
            key = next(iter(self._rest))
            raise ValueError(f"schedule.{key} is not a key of schedule {self.name}")


def _length_in_steps(keys: _ScheduleKeys, key: str, unit: str, steps_per_epoch: int, *, zero_ok=False) -> int:
    check = _non_negative if zero_ok else _positive
    length = check(f"schedule.{key}", keys.take(key))
    steps = schedules.to_steps(length, unit, steps_per_epoch)
    if steps < (0 if zero_ok else 1):
        raise ValueError(f"schedule.{key} = {length} {unit}s is less than one step")
    return steps


def _build_schedule(
    config: Mapping[str, Any], learning_rate: float, steps_per_epoch: int
) -> tuple[optax.Schedule, list[optax.GradientTransformation]]:
    """The schedule function, and the transforms to put at the end of the chain."""
    keys = _ScheduleKeys(config)
    tail: list[optax.GradientTransformation] = []
    if keys.name == "constant":
        schedule = schedules.constant(learning_rate)
    elif keys.name == "step_decay":
        factor = _factor("schedule.factor", keys.take("factor"))
        unit = keys.take_unit()
        every = _length_in_steps(keys, "every", unit, steps_per_epoch)
        schedule = schedules.step_decay(learning_rate, factor, every)
    elif keys.name == "exponential":
        decay_rate = _factor("schedule.decay_rate", keys.take("decay_rate"))
        end_value = _non_negative("schedule.end_value", keys.take("end_value"))
        unit_steps = steps_per_epoch if keys.take_unit() == "epoch" else 1
        schedule = schedules.exponential(learning_rate, decay_rate, unit_steps, end_value)
    elif keys.name == "cosine":
        unit = keys.take_unit()
        length = _length_in_steps(keys, "length", unit, steps_per_epoch)
        warmup = _length_in_steps(keys, "warmup", unit, steps_per_epoch, zero_ok=True)
        if warmup >= length:
            raise ValueError(
                f"schedule.warmup ({warmup} steps) must be shorter than schedule.length ({length} steps)"
            )
        end_value = _non_negative("schedule.end_value", keys.take("end_value"))
        schedule = schedules.cosine(learning_rate, length, warmup, end_value)
    elif keys.name == "plateau":
        schedule = schedules.constant(learning_rate)
        tail.append(_build_plateau(keys, steps_per_epoch))
    else:
        raise ValueError(f"unknown schedule {keys.name!r}; known schedules: {', '.join(SCHEDULE_NAMES)}")
    keys.finish()
    return schedule, tail


def _build_plateau(keys: _ScheduleKeys, steps_per_epoch: int) -> optax.GradientTransformation:
    factor = _factor("schedule.factor", keys.take("factor"), allow_one=False)
    patience = _whole("schedule.patience", keys.take("patience"), minimum=1)  # in epochs
    rtol = _non_negative("schedule.rtol", keys.take("rtol"))
    atol = _non_negative("schedule.atol", keys.take("atol"))
    if rtol > 1 or rtol == atol == 0:
        raise ValueError(f"schedule.rtol must be in [0, 1] and rtol or atol > 0, got rtol={rtol}, atol={atol}")
    cooldown = _whole("schedule.cooldown", keys.take("cooldown"), minimum=0)  # in epochs
    min_scale = _non_negative("schedule.min_scale", keys.take("min_scale"))
    return schedules.plateau(factor, patience, rtol, atol, cooldown, min_scale, steps_per_epoch)


def build(
    optimizer: Mapping[str, Any],
    schedule: Mapping[str, Any] | None = None,
    l1: float = 0.0,
    l2: float = 0.0,
    steps_per_epoch: int = 1,
) -> tuple[optax.GradientTransformation, Callable[[int], float]]:
    """The full optimizer of a run, and the schedule of its learning rate.

    Args:
      optimizer: `name` (see `cnnlab.optim.names()`) and the hyperparameters of
        that optimizer, `learning_rate` included; the learning rate is the
        schedule's starting (or peak) value.
      schedule: `name` (one of `SCHEDULE_NAMES`) and its keys, lengths in
        `unit`s of "epoch" or "step"; None means constant.
      l1, l2: strengths λ of the L1 and L2 penalties on conv and dense kernels.
      steps_per_epoch: optimizer steps per epoch, to convert epoch lengths.

    Returns:
      `(tx, schedule)`: `tx` chains the regularizers, the optimizer with its
      learning rate following `schedule`, and, for the plateau schedule,
      `optax.contrib.reduce_on_plateau` last. That one needs the batch loss:
      call `tx.update(grads, opt_state, params, value=loss)` (the other
      transforms ignore `value`, so always passing it is safe).
      The peak rate lives in the optimizer state (`schedules.with_peak_rate`):
      `schedules.set_peak_rate(opt_state, rate)` changes it without a new
      update function, and `current_learning_rate(opt_state)` reads the rate
      of the latest update, plateau factor included. `schedule(step)` is the
      scheduled rate of the update at `step`, for plots.

    Raises:
      ValueError: naming the offending key, for an unknown optimizer or
        schedule, a missing or unknown key, or a value out of range.
    """
    hyperparameters = dict(optimizer)
    name = hyperparameters.pop("name", None)
    if name is None:
        raise ValueError(f"optimizer.name is missing; known optimizers: {', '.join(registry.names())}")
    registry.get(name)  # an unknown name lists the known ones
    _check_optimizer_hyperparameters(name, hyperparameters)
    _non_negative("l1", l1)
    _non_negative("l2", l2)
    _whole("steps_per_epoch", steps_per_epoch, minimum=1)

    learning_rate = hyperparameters.pop("learning_rate")
    schedule_config = schedule if schedule is not None else {"name": "constant"}
    schedule_fn, tail = _build_schedule(schedule_config, learning_rate, steps_per_epoch)
    shape, _ = _build_schedule(schedule_config, 1.0, steps_per_epoch)  # the same schedule at a peak of 1

    penalties = []
    if l1 > 0:
        penalties.append(regularizers.l1(l1))
    if l2 > 0:
        penalties.append(regularizers.l2(l2))
    factory = registry.get(name)
    core = schedules.with_peak_rate(factory, learning_rate, shape, **hyperparameters)
    return optax.chain(*penalties, core, *tail), schedule_fn
