"""SqueezeNet (Iandola et al., 2016), versions 1.0 and 1.1 in torchvision's layout.

A Fire module squeezes with 1x1 convs, then expands with parallel 1x1 and 3x3
convs whose outputs are concatenated. No FC layer: a 1x1 conv to `num_classes`
(after dropout 0.5), ReLU, global average pooling. Max-pools use `ceil_mode`.
At 224x224x3 with 1,000 classes: 1,248,424 (1.0) and 1,235,496 (1.1) parameters.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

# Per version: stem (features, kernel), then the layer sequence: "M" is a 3x3/2
# max-pool, a tuple is a Fire module (squeeze, expand1x1, expand3x3).
LAYOUTS = {
    "1_0": (
        (96, 7),
        ["M", (16, 64, 64), (16, 64, 64), (32, 128, 128), "M", (32, 128, 128), (48, 192, 192), (48, 192, 192),
         (64, 256, 256), "M", (64, 256, 256)],
    ),
    "1_1": (
        (64, 3),
        ["M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M", (48, 192, 192), (48, 192, 192),
         (64, 256, 256), (64, 256, 256)],
    ),
}


class Fire(nn.Module):
    """squeeze 1x1 -> ReLU -> [expand 1x1, expand 3x3] -> ReLU -> concat."""

    squeeze: int
    expand1x1: int
    expand3x3: int
    conv: Any

    @nn.compact
    def __call__(self, x):  # (B, H, W, C) -> (B, H, W, expand1x1 + expand3x3)
        x = nn.relu(self.conv(self.squeeze, (1, 1), name="squeeze")(x))
        e1 = nn.relu(self.conv(self.expand1x1, (1, 1), name="expand1x1")(x))
        e3 = nn.relu(self.conv(self.expand3x3, (3, 3), padding=1, name="expand3x3")(x))
        return jnp.concatenate([e1, e3], axis=-1)


class SqueezeNet(nn.Module):
    """torchvision.models.squeezenet1_0 / squeezenet1_1 (`version="1_0"` or `"1_1"`)."""

    num_classes: int = 1000
    version: str = "1_0"
    dropout_rate: float = 0.5
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.version not in LAYOUTS:
            raise ValueError(f"unknown SqueezeNet version {self.version!r}; known: {', '.join(LAYOUTS)}")
        conv = layers.conv_factory(self)
        (stem_features, stem_kernel), sequence = LAYOUTS[self.version]
        x = nn.relu(conv(stem_features, (stem_kernel, stem_kernel), 2, "VALID", name="conv1")(x))  # (B, 109|111, ., .)
        fires = pools = 0
        for spec in sequence:
            if spec == "M":
                pools += 1
                x = layers.MaxPool((3, 3), (2, 2), ceil_mode=True, strict=self.strict, name=f"pool{pools}")(x)
            else:
                fires += 1
                x = Fire(*spec, conv, name=f"fire{fires + 1}")(x)  # fire2 ... fire9, as in the paper
        # (B, 13, 13, 512) at 224 px
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        x = nn.relu(conv(self.num_classes, (1, 1), name="classifier")(x))  # (B, 13, 13, num_classes)
        return layers.GlobalAvgPool(name="avgpool")(x)  # (B, num_classes)
