"""The large models run a real forward pass, at a reduced input size where the
architecture allows it, with a few classes and a narrow classifier where the
model has one (`fc_features`). Training mode: BatchNorm on batch statistics,
dropout and drop-path active.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from models_testing import dropout_key, filled_variables

from cnnlab import models

NUM_CLASSES = 5
NARROW_FC = {"fc_features": 32}

# name: (input side, options). Smallest sides that the conv arithmetic allows
# (AlexNet's 11x11/4 stem) or that Keras allows (Inception v3 75, Xception 71).
FAST = {
    "alexnet": (67, NARROW_FC),
    "alexnet_grouped": (67, NARROW_FC),
    "alexnet_tv": (64, NARROW_FC),
    "vgg_a_lrn": (32, NARROW_FC),
    "vgg_c": (32, NARROW_FC),
    "googlenet": (64, {}),
    "inception_v3": (75, {}),
    "xception": (71, {}),
    "resnet18": (32, {}),
    "resnet50": (32, {}),
    "plain18": (32, {}),
    "resnet50_keras": (32, {}),
    "nin": (32, {}),
    "squeezenet1_0": (64, {}),
    "squeezenet1_1": (64, {}),
    "mobilenet_v1": (32, {}),
    "convnext_tiny": (32, {}),
    "vgg_a": (32, NARROW_FC),
    "vgg_b": (32, NARROW_FC),
    "vgg_d": (32, NARROW_FC),
    "vgg_e": (32, NARROW_FC),
    "resnet34": (32, {}),
    "plain34": (32, {}),
}
# Same code paths as ResNet-50 with more blocks; each takes ~10 s or more on two cores.
SLOW = {
    "resnet101": (32, {}),
    "resnet152": (32, {}),
}
CASES = [pytest.param(n, *FAST[n], id=n) for n in FAST] + [
    pytest.param(n, *SLOW[n], id=n, marks=pytest.mark.slow) for n in SLOW
]


def test_cases_cover_every_large_model():
    small = {"mlp", "typical_cnn", "lenet5", "simple_cnn"}  # see test_model_small.py
    aliases = {"vgg11", "vgg13", "vgg16", "vgg19"}  # the same modules as vgg_a, vgg_b, vgg_d, vgg_e
    assert set(FAST) | set(SLOW) == set(models.names()) - small - aliases


@pytest.mark.parametrize("name, side, options", CASES)
def test_training_forward_pass_at_reduced_size(name, side, options):
    model = models.create(name, num_classes=NUM_CLASSES, **options)
    input_shape = (side, side, 3)
    variables = filled_variables(model, input_shape)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, *input_shape), dtype=np.float32))

    @jax.jit
    def train_forward(variables, x):
        return model.apply(variables, x, train=True, rngs={"dropout": dropout_key()}, mutable=["batch_stats"])

    outputs, updates = train_forward(variables, x)
    logits, aux = outputs if name == "googlenet" else (outputs, ())
    assert logits.shape == (2, NUM_CLASSES)
    assert [a.shape for a in aux] == ([(2, NUM_CLASSES)] * 2 if name == "googlenet" else [])
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in (logits, *aux))
    stats_shapes = lambda tree: jax.tree.map(jnp.shape, tree)  # noqa: E731
    assert stats_shapes(updates.get("batch_stats", {})) == stats_shapes(variables.get("batch_stats", {}))
