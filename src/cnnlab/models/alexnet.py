"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in three layouts.

- `AlexNet()`: the lecture's single-tower table, 227x227x3 input, conv widths
  96-256-384-384-256, local response normalization after conv1 and conv2,
  dropout 0.5 in the classifier: 62,378,344 parameters.
- `AlexNet(groups=(1, 2, 1, 2, 2))`: the paper's two-GPU network, where conv2,
  conv4 and conv5 see only their own tower's half of the channels:
  60,965,224 parameters.
- `AlexNetTV`: torchvision's layout (64-192-384-256-256, no LRN, adaptive
  average pooling to 6x6, dropout before each hidden FC) at 224x224x3:
  61,100,840 parameters; its layer names follow the same conv1..fc8 scheme.

`fc_features` shrinks the two 4,096-wide layers (tests use a narrow classifier).
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers


class AlexNet(nn.Module):
    """The paper's AlexNet; ReLU -> LRN -> max-pool after conv1 and conv2."""

    num_classes: int = 1000
    features: Sequence[int] = (96, 256, 384, 384, 256)
    groups: Sequence[int] = (1, 1, 1, 1, 1)
    lrn: bool = True
    fc_features: int = 4096
    dropout_rate: float = 0.5
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self)
        pool = lambda name: layers.MaxPool((3, 3), (2, 2), strict=self.strict, name=name)  # noqa: E731
        c1, c2, c3, c4, c5 = self.features
        g1, g2, g3, g4, g5 = self.groups
        x = nn.relu(conv(c1, (11, 11), (4, 4), "VALID", feature_group_count=g1, name="conv1")(x))  # (B, 55, 55, 96)
        if self.lrn:
            x = layers.LocalResponseNorm(name="lrn1")(x)
        x = pool("pool1")(x)  # (B, 27, 27, 96): overlapping 3x3/2 pooling
        x = nn.relu(conv(c2, (5, 5), padding=2, feature_group_count=g2, name="conv2")(x))  # (B, 27, 27, 256)
        if self.lrn:
            x = layers.LocalResponseNorm(name="lrn2")(x)
        x = pool("pool2")(x)  # (B, 13, 13, 256)
        x = nn.relu(conv(c3, (3, 3), padding=1, feature_group_count=g3, name="conv3")(x))  # (B, 13, 13, 384)
        x = nn.relu(conv(c4, (3, 3), padding=1, feature_group_count=g4, name="conv4")(x))  # (B, 13, 13, 384)
        x = nn.relu(conv(c5, (3, 3), padding=1, feature_group_count=g5, name="conv5")(x))  # (B, 13, 13, 256)
        x = pool("pool5")(x)  # (B, 6, 6, 256)
        x = layers.Flatten(name="flatten")(x)  # (B, 9216)
        return _classifier(self, x, train, dropout_first=False)


class AlexNetTV(nn.Module):
    """torchvision.models.alexnet: 64-192-384-256-256, padding 2 in conv1, no LRN."""

    num_classes: int = 1000
    fc_features: int = 4096
    dropout_rate: float = 0.5
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self)
        pool = lambda name: layers.MaxPool((3, 3), (2, 2), strict=self.strict, name=name)  # noqa: E731
        x = nn.relu(conv(64, (11, 11), (4, 4), padding=2, name="conv1")(x))  # (B, 55, 55, 64)
        x = pool("pool1")(x)  # (B, 27, 27, 64)
        x = nn.relu(conv(192, (5, 5), padding=2, name="conv2")(x))  # (B, 27, 27, 192)
        x = pool("pool2")(x)  # (B, 13, 13, 192)
        x = nn.relu(conv(384, (3, 3), padding=1, name="conv3")(x))
        x = nn.relu(conv(256, (3, 3), padding=1, name="conv4")(x))
        x = nn.relu(conv(256, (3, 3), padding=1, name="conv5")(x))  # (B, 13, 13, 256)
        x = pool("pool5")(x)  # (B, 6, 6, 256)
        x = layers.AdaptiveAvgPool((6, 6), name="avgpool")(x)  # identity at 224 px
        x = layers.Flatten(name="flatten")(x)  # (B, 9216)
        return _classifier(self, x, train, dropout_first=True)


def _classifier(model: nn.Module, x, train: bool, dropout_first: bool):
    """fc6 -> fc7 -> fc8 with dropout around the hidden layers.

    The paper applies dropout after fc6 and fc7 (`dropout_first=False`);
    torchvision applies it before them (`dropout_first=True`).
    """
    dense = layers.dense_factory(model)
    for name in ("fc6", "fc7"):
        if dropout_first:
            x = nn.Dropout(model.dropout_rate, deterministic=not train, name=f"dropout_{name}")(x)
        x = nn.relu(dense(model.fc_features, name=name)(x))  # (B, 4096)
        if not dropout_first:
            x = nn.Dropout(model.dropout_rate, deterministic=not train, name=f"dropout_{name}")(x)
    return dense(model.num_classes, name="fc8")(x)
