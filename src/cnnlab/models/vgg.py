"""VGG (Simonyan & Zisserman, 2015), configurations A to E of the paper's Table 1.

A configuration is data: a list of stages, each a list of convolutions given as
`features` (3x3) or `(features, kernel)` (configuration C's 1x1 layers), or the
string "LRN" (configuration A-LRN). Every stage ends in a 2x2/2 max-pool; then
flatten, fc1 4096, fc2 4096 (ReLU, dropout 0.5) and the classifier. Layer names
follow Keras (`block1_conv1` ... `fc1`, `fc2`, `predictions`).

At 224x224x3 with 1,000 classes: A / A-LRN 132,863,336, B 133,047,848,
C 133,638,952, D 138,357,544, E 143,667,240 parameters. `batch_norm=True` adds a
BatchNorm after each convolution (torchvision's `vgg*_bn`, conv bias kept).
`num_filters` is the first stage's width (the paper's 64); every stage scales
with it, as in ResNet, so 16 gives a quarter-width net for small-data studies.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

LayerSpec = int | tuple[int, int] | str

CONFIGS: dict[str, list[list[LayerSpec]]] = {
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "A-LRN": [[64, "LRN"], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "C": [[64, 64], [128, 128], [256, 256, (256, 1)], [512, 512, (512, 1)], [512, 512, (512, 1)]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


class VGG(nn.Module):
    """Stacks of 3x3 (or 1x1) same-padded convolutions, five max-pools, three FC layers."""

    num_classes: int = 1000
    config: str = "D"
    batch_norm: bool = False
    fc_features: int = 4096
    num_filters: int = 64  # the first stage's width; the paper's 64-128-256-512-512 scale with it
    dropout_rate: float = 0.5
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.config not in CONFIGS:
            raise ValueError(f"unknown VGG config {self.config!r}; known: {', '.join(CONFIGS)}")
        conv = layers.conv_factory(self)
        norm = layers.batch_norm(train, self.dtype, self.param_dtype, self.bn_axis_name)
        for stage, specs in enumerate(CONFIGS[self.config], start=1):
            x = self._stage(x, stage, specs, conv, norm)
            x = layers.MaxPool((2, 2), strict=self.strict, name=f"block{stage}_pool")(x)  # spatial / 2
        x = layers.Flatten(name="flatten")(x)  # (B, 7 * 7 * 512) at 224 px
        dense = layers.dense_factory(self)
        for name in ("fc1", "fc2"):
            x = nn.relu(dense(self.fc_features, name=name)(x))  # (B, 4096)
            x = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"{name}_dropout")(x)
        return dense(self.num_classes, name="predictions")(x)

    def _stage(self, x, stage: int, specs: Sequence[LayerSpec], conv, norm):
        index = 0
        for spec in specs:
            if spec == "LRN":
                x = layers.LocalResponseNorm(name=f"block{stage}_lrn")(x)
                continue
            index += 1
            features, kernel = spec if isinstance(spec, tuple) else (spec, 3)
            features = features * self.num_filters // 64
            name = f"block{stage}_conv{index}"
            x = conv(features, (kernel, kernel), padding="SAME", name=name)(x)  # (B, H, W, features)
            if self.batch_norm:
                x = norm(name=f"{name}_bn")(x)
            x = nn.relu(x)
        return x
