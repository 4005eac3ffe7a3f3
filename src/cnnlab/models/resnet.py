"""Residual networks (He et al., 2016) and their plain counterparts.

- `resnet18` ... `resnet152`: v1.5 in torchvision's layout (the stride of a
  bottleneck sits in its 3x3 conv; convs without bias; BatchNorm eps 1e-5,
  PyTorch momentum 0.1 = Flax 0.9; projection shortcuts where the shape
  changes). Names follow torchvision (`conv1`, `bn1`, `layer1_0/conv1`, ...,
  `downsample_conv`, `fc`). 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 /
  60,192,808 parameters at 224x224x3 with 1,000 classes.
- `plain18`, `plain34`: the same stacks without any shortcut (no projections
  either), for the lecture's degradation experiment.
- `cifar_stem=True`: a 3x3/1 stem conv and no max-pool, for 28-32 px inputs.
- `resnet50_keras`: v1 as in keras.applications.ResNet50 (stride in the first
  1x1 conv, convs with bias, BatchNorm eps 1.001e-5 and momentum 0.99):
  25,583,592 trainable parameters and 53,120 BatchNorm statistics.

Sizes are data, as in the Flax ImageNet example:
`ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)`.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

ModuleDef = Any


class BasicBlock(nn.Module):
    """Two 3x3 convs; the shortcut is projected (1x1 conv + BN) when the shape changes."""

    features: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    shortcut: bool = True
    stride_in_1x1: bool = False  # unused: a basic block has no 1x1 conv
    expansion = 1

    @nn.compact
    def __call__(self, x):  # (B, H, W, C) -> (B, H / s, W / s, features)
        y = nn.relu(self.norm(name="bn1")(self.conv(self.features, (3, 3), self.strides, 1, name="conv1")(x)))
        y = self.norm(name="bn2")(self.conv(self.features, (3, 3), 1, 1, name="conv2")(y))
        return layers.residual_relu((y + _shortcut(self, x, y)) if self.shortcut else y)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4); v1.5 strides in the 3x3, v1 in the first 1x1."""

    features: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    shortcut: bool = True
    stride_in_1x1: bool = False
    expansion = 4

    @nn.compact
    def __call__(self, x):  # (B, H, W, C) -> (B, H / s, W / s, 4 * features)
        s1, s3 = (self.strides, 1) if self.stride_in_1x1 else (1, self.strides)
        y = nn.relu(self.norm(name="bn1")(self.conv(self.features, (1, 1), s1, 0, name="conv1")(x)))
        y = nn.relu(self.norm(name="bn2")(self.conv(self.features, (3, 3), s3, 1, name="conv2")(y)))
        y = self.norm(name="bn3")(self.conv(self.features * 4, (1, 1), 1, 0, name="conv3")(y))
        return layers.residual_relu((y + _shortcut(self, x, y)) if self.shortcut else y)


def _shortcut(block: nn.Module, x, y):
    """Identity, or a strided 1x1 projection + BN where the block changes the shape."""
    if x.shape == y.shape:
        return x
    x = block.conv(y.shape[-1], (1, 1), block.strides, 0, name="downsample_conv")(x)
    return block.norm(name="downsample_bn")(x)


class ResNet(nn.Module):
    """Stem, four stages of `stage_sizes` blocks (widths 64-128-256-512 x expansion), GAP, fc."""

    stage_sizes: Sequence[int]
    block_cls: ModuleDef
    num_classes: int = 1000
    num_filters: int = 64
    shortcut: bool = True
    cifar_stem: bool = False
    stride_in_1x1: bool = False
    conv_bias: bool = False
    bn_epsilon: float = 1e-5
    bn_momentum: float = 0.9
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self, use_bias=self.conv_bias)
        norm = layers.batch_norm(
            train, self.dtype, self.param_dtype, self.bn_axis_name, momentum=self.bn_momentum, epsilon=self.bn_epsilon
        )
        if self.cifar_stem:
            x = conv(self.num_filters, (3, 3), 1, 1, name="conv1")(x)  # (B, 32, 32, 64) at 32 px
            x = nn.relu(norm(name="bn1")(x))
        else:
            x = conv(self.num_filters, (7, 7), 2, 3, name="conv1")(x)  # (B, 112, 112, 64)
            x = nn.relu(norm(name="bn1")(x))
            x = layers.MaxPool((3, 3), (2, 2), padding=1, strict=self.strict, name="maxpool")(x)  # (B, 56, 56, 64)
        for stage, num_blocks in enumerate(self.stage_sizes):
            for i in range(num_blocks):
                strides = 2 if stage > 0 and i == 0 else 1
                x = self.block_cls(
                    self.num_filters * 2**stage,
                    strides,
                    conv,
                    norm,
                    shortcut=self.shortcut,
                    stride_in_1x1=self.stride_in_1x1,
                    name=f"layer{stage + 1}_{i}",
                )(x)
        x = layers.GlobalAvgPool(name="avgpool")(x)  # (B, 512 x expansion)
        return layers.dense_factory(self)(self.num_classes, name="fc")(x)


ResNet18 = partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)
ResNet101 = partial(ResNet, stage_sizes=(3, 4, 23, 3), block_cls=Bottleneck)
ResNet152 = partial(ResNet, stage_sizes=(3, 8, 36, 3), block_cls=Bottleneck)
Plain18 = partial(ResNet18, shortcut=False)
Plain34 = partial(ResNet34, shortcut=False)
ResNet50Keras = partial(
    ResNet50, stride_in_1x1=True, conv_bias=True, bn_epsilon=1.001e-5, bn_momentum=0.99
)
