"""The optimizer/ and schedule/ config groups, composed by Hydra as `cnnlab-train` does, feed `optim.build`."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optim_testing import LECTURE_OPTIMIZERS

from cnnlab import optim

CONF = Path(__file__).resolve().parents[2] / "conf"
# `optimizer=<option>` selects conf/optimizer/<option>.yaml; options may contain a slash (optax/adam)
OPTIMIZER_OPTIONS = sorted(
    str(path.relative_to(CONF / "optimizer").with_suffix("")) for path in (CONF / "optimizer").rglob("*.yaml")
)
SCHEDULE_OPTIONS = sorted(p.stem for p in (CONF / "schedule").glob("*.yaml"))


def composed(*overrides: str) -> dict:
    """The run config for these command-line overrides, resolved to plain containers."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


def build_from(cfg: dict, steps_per_epoch: int = 10):
    return optim.build(
        cfg["optimizer"], cfg["schedule"], l1=cfg["l1"], l2=cfg["l2"], steps_per_epoch=steps_per_epoch
    )


def test_every_lecture_optimizer_and_its_optax_counterpart_have_a_file():
    assert set(LECTURE_OPTIMIZERS) <= set(OPTIMIZER_OPTIONS)
    assert {"optax/sgd", "optax/adagrad", "optax/rmsprop", "optax/adadelta", "optax/adam"} <= set(OPTIMIZER_OPTIONS)
    assert set(OPTIMIZER_OPTIONS) <= set(optim.names())
    assert set(SCHEDULE_OPTIONS) == set(optim.SCHEDULE_NAMES)


@pytest.mark.parametrize("option", OPTIMIZER_OPTIONS)
def test_every_optimizer_file_builds_with_every_schedule(option):
    for schedule in SCHEDULE_OPTIONS:
        cfg = composed(f"optimizer={option}", f"schedule={schedule}", "l2=1e-4")
        assert cfg["optimizer"]["name"] == option  # `optimizer=optax/adam` runs optax.adam
        tx, _ = build_from(cfg)
    # one step with the last (plateau) schedule, passing the loss as the train step does
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)}
    updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params, value=1.0)
    assert float(updates["kernel"][0, 0]) < 0  # a descent step


def test_the_issue_command_line():
    """cnnlab-train optimizer=nesterov optimizer.learning_rate=0.05 schedule=step_decay"""
    cfg = composed("optimizer=nesterov", "optimizer.learning_rate=0.05", "schedule=step_decay")
    _, lr = build_from(cfg, steps_per_epoch=10)
    every = cfg["schedule"]["every"] * 10
    assert lr(0) == pytest.approx(0.05) and lr(every - 1) == pytest.approx(0.05)
    assert lr(every) == pytest.approx(0.05 * cfg["schedule"]["factor"])


def test_cosine_length_follows_the_number_of_epochs():
    _, lr = build_from(composed("schedule=cosine", "trainer.epochs=4"), steps_per_epoch=10)
    learning_rate = composed()["optimizer"]["learning_rate"]
    assert lr(20) == pytest.approx(learning_rate / 2) and lr(40) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.learning_rate=-0.1", "optimizer.learning_rate must be >= 0, got -0.1"),
        ("optimizer.b1=1.0", "optimizer.b1 must be in [0, 1), got 1.0"),
        ("l2=-1e-4", "l2 must be >= 0"),
    ],
)
def test_bad_overrides_fail_at_config_time_with_the_key(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_from(composed(override))
