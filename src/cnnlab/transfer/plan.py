"""A run's transfer plan, from the `transfer` config group: what is loaded, replaced and frozen.

    plan = transfer.prepare(cfg["transfer"], model=model, input_shape=(32, 32, 1))
    plan.model                        # what the run trains (hidden head layers added)
    phases, schedule = plan.phases(build, boundary=epochs * steps_per_epoch)
    state = plan.start(state, tx)     # pretrained base, fresh head, for a run that starts anew

Strategies (the lecture's 1-3, plus a linear probe):
- `full`: every parameter trains, starting from the pretrained ones;
- `partial`: the first `freeze.stages` stages and the `freeze.patterns` stay frozen;
- `feature_extractor`: the whole base stays frozen, only the new head trains;
- `linear_probe`: no training; a logistic regression on the base's features
  (see linear_probe.py).
`finetune.epochs > 0` adds a second phase (see finetune.py).
"""

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import numpy as np
import optax
from flax import traverse_util

from cnnlab.optim import schedules
from cnnlab.transfer import checkpoints, finetune, freezing, heads
from cnnlab.transfer.mapping import WeightMismatchError, mismatch_message, variable_shapes

log = logging.getLogger(__name__)

STRATEGIES = ("none", "full", "partial", "feature_extractor", "linear_probe")


class Phase(NamedTuple):
    tx: optax.GradientTransformation
    model: Any  # what the train step applies (frozen BatchNorm layers intercepted)
    learning_rate: Callable  # opt_state -> the rate of the update that produced it, for the step metrics


@dataclasses.dataclass(frozen=True)
class Plan:
    strategy: str
    model: nn.Module  # the target model: the base, with the hidden head layers if any
    base: nn.Module  # without them: what the pretrained weights fit
    pretrained: checkpoints.Pretrained
    head: frozenset[str]  # top-level modules that start fresh and are never frozen
    masks: tuple  # per phase, a pytree like params: True where frozen
    frozen_bn: tuple[frozenset, ...]  # per phase, the BatchNorm layers that run in inference mode
    finetune_epochs: int
    lr_scale: float
    normalization: dict | None  # the source run's, to normalize the target data with

    def start(self, state, tx: optax.GradientTransformation):
        """`state` (as initialized from the seed) with the pretrained base; the head stays as it is."""
        params = _merge(state.params, self.pretrained.variables["params"], self.head)
        batch_stats = _merge(state.batch_stats, self.pretrained.variables.get("batch_stats", {}), self.head)
        return state.replace(params=params, batch_stats=batch_stats, opt_state=tx.init(params))

    def phases(self, build: Callable[[float], tuple], boundary: int) -> tuple[list[Phase], Callable]:
        """The training phases and the run's learning rate by step.

        `build(scale)` returns `(tx, schedule)` at `scale` times the configured
        learning rate; `boundary` is the first step of the fine-tune phase.
        """
        head_tx, head_schedule = build(1.0)
        if not self.finetune_epochs:
            return [Phase(_masked(head_tx, self.masks[0]), self._train_model(0), schedules.current_learning_rate)], \
                head_schedule
        finetune_tx, finetune_schedule = build(self.lr_scale)
        first, second = _masked(head_tx, self.masks[0]), _masked(finetune_tx, self.masks[1])
        phases = [Phase(finetune.phase(first, second, p), self._train_model(p), finetune.step_learning_rate(p))
                  for p in range(2)]
        return phases, finetune.run_learning_rate(head_schedule, finetune_schedule, boundary)

    def _train_model(self, phase: int):
        paths = self.frozen_bn[phase]
        return freezing.FrozenBatchNorm(self.model, paths) if paths else self.model


def prepare(cfg: Mapping[str, Any] | None, *, model: nn.Module, input_shape: Sequence[int]) -> Plan | None:
    """The plan for `transfer` config `cfg`, or None for strategy `none`; fails early on bad settings."""
    cfg = cfg or {"strategy": "none"}
    strategy = _strategy(cfg)
    if strategy == "none":
        return None
    hidden = tuple((cfg.get("head") or {}).get("hidden") or ())
    target = heads.WithHidden(model, hidden) if hidden and strategy != "linear_probe" else model
    shapes, order = variable_shapes(target, input_shape)
    head = frozenset(heads.head_modules(target))
    pretrained = checkpoints.read(cfg["from_run"], model=model, input_shape=input_shape,
                                  which=cfg.get("checkpoint", "best"))  # fmt: skip
    _check_fits(shapes, pretrained, head)

    family = type(model).__name__
    with_variables = {path[1] for path in traverse_util.flatten_dict(dict(shapes))}
    stage_names = freezing.stages(family, order, with_variables, head)
    masks = _masks(strategy, cfg, functools.partial(freezing.frozen_mask, shapes["params"], family=family, head=head,
                                                    stage_names=stage_names))  # fmt: skip
    bn_inference = (cfg.get("freeze") or {}).get("bn_inference", True)
    frozen_bn = tuple(frozenset(freezing.frozen_batch_norms(mask, shapes.get("batch_stats", {})))
                      if bn_inference else frozenset() for mask in masks)  # fmt: skip
    _log_plan(strategy, pretrained, stage_names, masks)
    tuning = cfg.get("finetune") or {}
    return Plan(strategy, target, model, pretrained, head, masks, frozen_bn, int(tuning.get("epochs") or 0),
                float(tuning.get("lr_scale", 0.1)), _normalization(cfg, pretrained, input_shape[-1]))  # fmt: skip


def _strategy(cfg: Mapping[str, Any]) -> str:
    """`transfer.strategy`, checked together with the keys it needs."""
    strategy = cfg.get("strategy", "none")
    if strategy not in STRATEGIES:
        raise ValueError(f"transfer.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "none" and cfg.get("from_run"):
        raise ValueError("transfer.from_run is set but transfer.strategy=none; choose full, partial, "
                         "feature_extractor or linear_probe (e.g. transfer=feature_extractor)")  # fmt: skip
    if strategy != "none" and not cfg.get("from_run"):
        raise ValueError(f"transfer.strategy={strategy} needs transfer.from_run=<run directory, checkpoint or "
                         "weight file>")  # fmt: skip
    if strategy == "linear_probe" and (cfg.get("finetune") or {}).get("epochs"):
        raise ValueError("transfer.finetune.epochs applies to trained strategies, not linear_probe")
    return strategy


def _masks(strategy: str, cfg: Mapping[str, Any], mask: Callable) -> tuple:
    """The frozen-parameter mask of each phase; `mask(everything=..., frozen_stages=..., patterns=...)`."""
    freeze = cfg.get("freeze") or {}
    if strategy == "partial" and not freeze.get("stages") and not freeze.get("patterns"):
        stages = ", ".join(mask.keywords["stage_names"])
        raise ValueError(f"transfer.strategy=partial freezes nothing: set transfer.freeze.stages=N (of {stages}) "
                         "or transfer.freeze.patterns")  # fmt: skip
    masks = [mask(everything=strategy in ("feature_extractor", "linear_probe"),
                  **(_rules(freeze) if strategy == "partial" else {}))]  # fmt: skip
    tuning = cfg.get("finetune") or {}
    if tuning.get("epochs"):  # the fine-tune phase unfreezes everything but its own freeze rules
        masks.append(mask(everything=False, **_rules(tuning.get("freeze") or {})))
    return tuple(masks)


def _rules(freeze: Mapping[str, Any]) -> dict:
    return {"frozen_stages": int(freeze.get("stages") or 0), "patterns": tuple(freeze.get("patterns") or ())}


def _masked(tx: optax.GradientTransformation, mask) -> optax.GradientTransformation:
    """Frozen parameters partitioned off; nothing to partition when everything trains."""
    return freezing.partition(tx, mask) if any(_leaves(mask)) else tx


def _leaves(tree) -> list:
    """The leaves of a nested dict (empty for an empty one)."""
    return list(traverse_util.flatten_dict(tree).values()) if tree else []


def _check_fits(shapes, pretrained: checkpoints.Pretrained, head: frozenset[str]) -> None:
    """Every base variable of the target has a pretrained value of the same shape, and nothing is left over."""
    want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(dict(shapes)).items() if k[1] not in head}
    have = {k: np.shape(v) for k, v in traverse_util.flatten_dict(pretrained.variables).items() if k[1] not in head}
    fmt = "/".join
    missing = [f"{fmt(k)} {s}" for k, s in want.items() if k not in have]
    unexpected = [f"{fmt(k)} {s}" for k, s in have.items() if k not in want]
    mismatched = [f"{fmt(k)}: pretrained {have[k]}, model {s}" for k, s in want.items() if k in have and have[k] != s]
    if missing or unexpected or mismatched:
        source = f"transfer.from_run {pretrained.source} ({pretrained.model_name or 'unknown model'})"
        raise WeightMismatchError(mismatch_message(source, missing, unexpected, mismatched))


def _merge(initial, pretrained, head: frozenset[str]):
    """`initial` with every variable outside the head replaced by its pretrained value."""
    flat = traverse_util.flatten_dict(initial)
    source = traverse_util.flatten_dict(pretrained)
    merged = {k: v if k[0] in head else np.asarray(source[k], dtype=v.dtype) for k, v in flat.items()}
    return traverse_util.unflatten_dict(merged) if merged else initial


def _normalization(cfg: Mapping[str, Any], pretrained: checkpoints.Pretrained, channels: int) -> dict | None:
    """The source run's statistics when `transfer.normalization=source` and the channels agree."""
    stats = pretrained.normalization
    if cfg.get("normalization", "source") != "source" or not stats:
        return None
    if len(stats["shift"]) != channels:
        log.warning("the pretrained run normalized %d channels, the target has %d: using the target's statistics",
                    len(stats["shift"]), channels)  # fmt: skip
        return None
    return stats


def _log_plan(strategy: str, pretrained, stage_names, masks) -> None:
    frozen = [sum(map(bool, _leaves(mask))) for mask in masks]
    total = len(_leaves(masks[0]))
    log.info("transfer %s from %s: stages %s; frozen parameter arrays per phase: %s of %d", strategy,
             pretrained.source, ", ".join(stage_names), " then ".join(map(str, frozen)), total)  # fmt: skip
