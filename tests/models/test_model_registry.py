"""The registry and the Hydra group conf/model/: one file per name, options the model accepts."""

from pathlib import Path

import pytest
import yaml

from cnnlab import models

CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet19'") as error:
        models.create("resnet19", num_classes=10)
    for name in ("lenet5", "resnet18", "googlenet", "convnext_tiny"):
        assert name in str(error.value)


def test_every_name_has_a_model_config_and_every_config_a_name():
    assert sorted(path.stem for path in CONF.glob("*.yaml")) == models.names()


@pytest.mark.parametrize("name", models.names())
def test_model_config_builds_its_model(name):
    cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert cfg.pop("name") == name
    assert "input_shape" in cfg and cfg.pop("input_shape") is None  # null: taken from the data config
    model = models.create(name, num_classes=3, **cfg)  # an unknown option raises a TypeError here
    for key, value in cfg.items():  # YAML lists arrive as tuples
        assert getattr(model, key) == (tuple(value) if isinstance(value, list) else value)


def test_default_experiment_model_config():
    cfg = yaml.safe_load((CONF / "lenet5.yaml").read_text())
    assert cfg == {"name": "lenet5", "activation": "relu", "pooling": "max", "input_shape": None}
