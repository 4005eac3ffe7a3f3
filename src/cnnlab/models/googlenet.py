"""GoogLeNet / Inception v1 (Szegedy et al., 2015), the paper's Table 1.

Output contract (what the trainer relies on):

- `train=False`: `logits`, shape (B, num_classes).
- `train=True` with `aux_logits=True` (the default): a pair
  `(logits, (aux1, aux2))`, the auxiliary classifiers after inception 4a and 4d,
  each (B, num_classes); the paper adds their losses with weight 0.3.
- `aux_logits=False`: no auxiliary heads at all (no parameters), plain `logits`
  in both modes.

Layout follows torchvision's `googlenet` so its weights can be imported: every
convolution is conv (no bias) + BatchNorm (eps 1e-3) + ReLU, max-pools use
`ceil_mode`, and the "5x5" branch uses a 3x3 kernel (`branch3_kernel=3`, a slip
torchvision keeps for weight compatibility). With `batch_norm=True,
aux_logits=False` that is 6,624,904 parameters at 224x224x3 with 1,000 classes;
`branch3_kernel=5` gives the paper's 5x5 (7,005,832). `batch_norm=False` gives
the paper's conv-with-bias layers. Global average pooling, dropout 0.4.
"""

from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), Table 1 of the paper.
INCEPTION_CONFIGS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class ConvBlock(nn.Module):
    """conv -> (BatchNorm) -> ReLU; the conv has a bias only without BatchNorm."""

    features: int
    kernel: int = 1
    strides: int = 1
    padding: Any = 0
    batch_norm: bool = True
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        k = (self.kernel, self.kernel)
        x = layers.conv_factory(self)(
            self.features, k, self.strides, self.padding, use_bias=not self.batch_norm, name="conv"
        )(x)
        if self.batch_norm:
            x = layers.batch_norm(train, self.dtype, self.param_dtype, self.bn_axis_name, epsilon=1e-3)(name="bn")(x)
        return nn.relu(x)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1x1 | 1x1-3x3 | 1x1-"5x5" | pool-1x1."""

    config: tuple[int, int, int, int, int, int]
    block: Any  # partial(ConvBlock, ...) carrying batch_norm, strict and dtypes
    branch3_kernel: int = 3
    strict: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, H, W, C_in) -> (B, H, W, sum of branches)
        c1, c3r, c3, c5r, c5, proj = self.config
        b1 = self.block(c1, name="branch1")(x, train)
        b2 = self.block(c3r, name="branch2_reduce")(x, train)
        b2 = self.block(c3, 3, padding=1, name="branch2")(b2, train)
        b3 = self.block(c5r, name="branch3_reduce")(x, train)
        k = self.branch3_kernel
        b3 = self.block(c5, k, padding=k // 2, name="branch3")(b3, train)
        b4 = layers.MaxPool((3, 3), (1, 1), padding=1, ceil_mode=True, strict=self.strict, name="branch4_pool")(x)
        b4 = self.block(proj, name="branch4")(b4, train)
        return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class AuxHead(nn.Module):
    """Auxiliary classifier: avg-pool to 4x4 -> 1x1 conv 128 -> fc 1024 -> dropout 0.7 -> fc."""

    num_classes: int
    block: Any
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, 14, 14, C) at 224 px
        x = layers.AdaptiveAvgPool((4, 4), name="pool")(x)  # (B, 4, 4, C): the paper's 5x5/3 pool at 14x14
        x = self.block(128, name="conv")(x, train)  # (B, 4, 4, 128)
        x = layers.Flatten(name="flatten")(x)  # (B, 2048)
        dense = layers.dense_factory(self)
        x = nn.relu(dense(1024, name="fc1")(x))
        x = nn.Dropout(0.7, deterministic=not train, name="dropout")(x)
        return dense(self.num_classes, name="fc2")(x)


class GoogLeNet(nn.Module):
    """Inception v1: stem, nine inception modules, global average pooling, dropout, fc."""

    num_classes: int = 1000
    batch_norm: bool = True
    aux_logits: bool = True
    branch3_kernel: int = 3
    dropout_rate: float = 0.4
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        block = _block_factory(self)
        pool = lambda window, name: layers.MaxPool(  # noqa: E731
            (window, window), (2, 2), ceil_mode=True, strict=self.strict, name=name
        )
        x = block(64, 7, 2, 3, name="conv1")(x, train)  # (B, 112, 112, 64)
        x = pool(3, "pool1")(x)  # (B, 56, 56, 64)
        x = block(64, name="conv2")(x, train)
        x = block(192, 3, padding=1, name="conv3")(x, train)  # (B, 56, 56, 192)
        x = pool(3, "pool2")(x)  # (B, 28, 28, 192)
        aux = []
        for name in INCEPTION_CONFIGS:
            if name == "4a":
                x = pool(3, "pool3")(x)  # (B, 14, 14, 480)
            if name == "5a":
                x = pool(2, "pool4")(x)  # (B, 7, 7, 832)
            config = INCEPTION_CONFIGS[name]
            inception = Inception(config, block, self.branch3_kernel, self.strict, name=f"inception{name}")
            x = inception(x, train)  # 3a: (B, 28, 28, 256) ... 5b: (B, 7, 7, 1024)
            if self.aux_logits and name in ("4a", "4d"):
                head = AuxHead(self.num_classes, block, self.dtype, self.param_dtype, name=f"aux_{name}")
                # Initialize the heads in eval mode too, so `init` always creates their params.
                aux.append(head(x, train) if train or self.is_initializing() else None)
        x = layers.GlobalAvgPool(name="avgpool")(x)  # (B, 1024)
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        logits = layers.dense_factory(self)(self.num_classes, name="fc")(x)
        if train and self.aux_logits:
            return logits, tuple(aux)
        return logits


def _block_factory(model: GoogLeNet) -> partial:
    """ConvBlock carrying the model's batch_norm, strict flag and dtypes."""
    return partial(
        ConvBlock, batch_norm=model.batch_norm, strict=model.strict, dtype=model.dtype, param_dtype=model.param_dtype,
        bn_axis_name=model.bn_axis_name,
    )
