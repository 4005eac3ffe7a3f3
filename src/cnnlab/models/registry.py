"""Model names -> module factories: `create(name, num_classes=..., **options)`.

Each entry is a Flax module class or a `functools.partial` of one that fixes a
size (sizes are data). Options are the module's fields, e.g.
`create("resnet18", num_classes=10, cifar_stem=True)`: the architecture and
nothing else. Every model takes `dtype` and `param_dtype`; every model with
convolution or pooling windows (all but the MLP) takes `strict`, an arithmetic
check: with `strict=True` a window whose stride does not tile its padded
input exactly (`(n + 2p - k) / s` not an integer) raises a ValueError naming
the layer instead of silently dropping the last rows.

Which code computes the convolutions, BatchNorm and pooling is not a model
option: `cnnlab.backend` decides it per backend when the model is traced.
"""

import dataclasses
from functools import partial
from typing import Any, Callable

import flax.linen as nn

from cnnlab.models import resnet
from cnnlab.models.alexnet import AlexNet, AlexNetTV
from cnnlab.models.convnext import ConvNeXt
from cnnlab.models.googlenet import GoogLeNet
from cnnlab.models.inception import InceptionV3
from cnnlab.models.lenet import LeNet5
from cnnlab.models.mobilenet import MobileNetV1
from cnnlab.models.nin import NIN
from cnnlab.models.simple import MLP, SimpleCNN, TypicalCNN
from cnnlab.models.squeezenet import SqueezeNet
from cnnlab.models.vgg import VGG
from cnnlab.models.xception import Xception

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "typical_cnn": TypicalCNN,
    "lenet5": LeNet5,
    "simple_cnn": SimpleCNN,
    "alexnet": AlexNet,
    "alexnet_grouped": partial(AlexNet, groups=(1, 2, 1, 2, 2)),
    "alexnet_tv": AlexNetTV,
    "vgg_a": partial(VGG, config="A"),
    "vgg_a_lrn": partial(VGG, config="A-LRN"),
    "vgg_b": partial(VGG, config="B"),
    "vgg_c": partial(VGG, config="C"),
    "vgg_d": partial(VGG, config="D"),
    "vgg_e": partial(VGG, config="E"),
    "vgg11": partial(VGG, config="A"),
    "vgg13": partial(VGG, config="B"),
    "vgg16": partial(VGG, config="D"),
    "vgg19": partial(VGG, config="E"),
    "googlenet": GoogLeNet,
    "inception_v3": InceptionV3,
    "xception": Xception,
    "resnet18": resnet.ResNet18,
    "resnet34": resnet.ResNet34,
    "resnet50": resnet.ResNet50,
    "resnet101": resnet.ResNet101,
    "resnet152": resnet.ResNet152,
    "plain18": resnet.Plain18,
    "plain34": resnet.Plain34,
    "resnet50_keras": resnet.ResNet50Keras,
    "nin": NIN,
    "squeezenet1_0": partial(SqueezeNet, version="1_0"),
    "squeezenet1_1": partial(SqueezeNet, version="1_1"),
    "mobilenet_v1": MobileNetV1,
    "convnext_tiny": ConvNeXt,
}

# The input each architecture was designed for (H, W, C), or (T, C) for 1-D.
_INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "mlp": (64, 64, 3),
    "typical_cnn": (28, 28, 1),
    "lenet5": (32, 32, 1),
    "simple_cnn": (32, 32, 3),
    "alexnet": (227, 227, 3),
    "alexnet_grouped": (227, 227, 3),
    "inception_v3": (299, 299, 3),
    "xception": (299, 299, 3),
    "nin": (32, 32, 3),
}


def names() -> list[str]:
    """Every model name that `create` knows, sorted."""
    return sorted(_REGISTRY)


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")


def create(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build the model registered as `name` with a `num_classes`-way classifier."""
    _check_name(name)
    # YAML gives lists; module fields want hashable tuples (e.g. `features: [16, 32]`).
    options = {key: _as_tuples(value) for key, value in options.items()}
    return _REGISTRY[name](num_classes=num_classes, **options)


def _as_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def default_num_classes(name: str) -> int:
    """The class count of the architecture's paper (the module's default `num_classes`)."""
    _check_name(name)
    factory = _REGISTRY[name]
    if isinstance(factory, partial) and "num_classes" in factory.keywords:
        return factory.keywords["num_classes"]
    module = factory.func if isinstance(factory, partial) else factory
    return {field.name: field.default for field in dataclasses.fields(module)}["num_classes"]


def default_input_shape(name: str) -> tuple[int, ...]:
    """The per-example input shape the architecture was designed for (224x224x3 unless noted)."""
    _check_name(name)
    return _INPUT_SHAPES.get(name, (224, 224, 3))
