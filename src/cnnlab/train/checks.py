"""The checks of a run's config that need no data: run first, before anything is loaded.

Each raises a `ConfigError` (a ValueError) naming the key, the value and what
is expected, so that a mistyped command fails in a second with one sentence
instead of a traceback after the data has loaded. The checks that need the
data (a batch larger than the training set, k-fold sizes) stay with the data.
"""

import math
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from cnnlab import models, optim


class ConfigError(ValueError):
    """A config value a user can fix; the entry point prints it as one line."""


def check(cfg: Mapping[str, Any]) -> None:
    trainer, data = cfg["trainer"], cfg["data"]
    _whole("seed", cfg["seed"], 0)
    _whole("trainer.epochs", trainer["epochs"], 1)
    _whole("trainer.batch_size", trainer["batch_size"], 1)
    _whole("trainer.eval_batch_size", trainer["eval_batch_size"], 1)
    _whole("trainer.steps_per_call", trainer["steps_per_call"], 1)
    smoothing = _number("trainer.label_smoothing", trainer["label_smoothing"])
    if not 0 <= smoothing < 1:
        raise ConfigError(f"trainer.label_smoothing must be in [0, 1), got {smoothing}")
    if _number("trainer.early_stopping.min_delta", trainer["early_stopping"]["min_delta"]) < 0:
        raise ConfigError(f"trainer.early_stopping.min_delta must be >= 0, got {trainer['early_stopping']['min_delta']}")
    for key in ("max_loss", "max_grad_norm"):
        limit = trainer.get(key)
        if limit is not None and not (math.isfinite(_number(f"trainer.{key}", limit)) and limit > 0):
            raise ConfigError(f"trainer.{key} must be a finite number > 0, or null for no limit, got {limit}")
    if cfg["checkpoint"]["every_steps"] is not None:
        _whole("checkpoint.every_steps", cfg["checkpoint"]["every_steps"], 1)
    rate = _number("optimizer.learning_rate", cfg["optimizer"].get("learning_rate"))
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"optimizer.learning_rate must be a finite number > 0, got {rate}")
    try:  # every optimizer and schedule key, as the run will build them
        optim.build(cfg["optimizer"], cfg.get("schedule"), l1=cfg.get("l1", 0.0), l2=cfg.get("l2", 0.0))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    _whole("data.image_size", data["image_size"], 1)
    if data.get("channels", 1) not in (1, 3):
        raise ConfigError(f"data.channels must be 1 (grey) or 3 (RGB), got {data.get('channels')!r}")
    split = data.get("split") or {}
    fractions = [split.get(k) for k in ("train", "val", "test")]
    if all(f is not None for f in fractions) and (min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0)):
        raise ConfigError(f"data.split.train, val and test must be > 0 and sum to 1, got {fractions}")
    if data["name"] in ("mnist", "fashion_mnist") and not data.get("dir"):
        raise ConfigError(f"data={data['name']} needs data.dir=<the folder of its four IDX files>")
    if data["name"] == "image_folder" and not data.get("root"):
        raise ConfigError("data=image_folder needs data.root=<a folder with one sub-folder of images per class>")
    check_model_fits(cfg)


def check_model_fits(cfg: Mapping[str, Any]) -> None:
    """The model traced on the run's input shape (shapes only): a window that does not fit
    is refused in one sentence naming the smallest square input that fits and the paper's."""
    options = dict(cfg["model"])
    name, input_shape = options.pop("name"), options.pop("input_shape")
    if input_shape is not None:
        return  # an explicit shape: the layer's own message names the layer and the arithmetic
    data = cfg["data"]
    channels = data.get("channels", 1)
    model = models.create(name, num_classes=data.get("num_classes") or 10, **options)
    layer_error = _misfit(model, data["image_size"], channels)
    if layer_error is None:
        return
    designed = models.default_input_shape(name)
    smallest = _smallest_fitting(model, channels, designed[0])
    raise ConfigError(
        f"model={name} does not fit data.image_size={data['image_size']}: its windows need inputs of at least "
        f"{smallest}x{smallest} (its paper used {'x'.join(map(str, designed))}); set data.image_size={designed[0]}. "
        f"The first layer that does not fit: {layer_error}"
    )


def _misfit(model, size: int, channels: int) -> str | None:
    """The layer's own message when a window does not fit a size x size input, else None."""
    try:
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, channels)), train=False))
    except ValueError as error:
        if "does not fit" in str(error):
            return str(error)
        raise
    return None


def _fits(model, size: int, channels: int) -> bool:
    return _misfit(model, size, channels) is None


def _smallest_fitting(model, channels: int, upper: int) -> int:
    """The smallest square side in [1, upper] the model accepts (windows only shrink with the input)."""
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _fits(model, mid, channels) else (mid + 1, hi)
    return lo


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    return float(value)


def _whole(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{key} must be a whole number >= {minimum}, got {value!r}")
    return int(value)
