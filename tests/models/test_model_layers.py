"""Conv arithmetic, the build-time shape errors, and the shared layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from models_testing import abstract_init, dropout_key

from cnnlab import models
from cnnlab.models import layers

FORMULA = "floor((n + 2p - k) / s) + 1"


@pytest.mark.parametrize(
    "n, k, s, p, expected",
    [
        (32, 5, 1, 0, 28),  # LeNet-5 C1
        (28, 5, 1, 0, 24),
        (227, 11, 4, 0, 55),  # AlexNet conv1
        (224, 11, 4, 2, 55),  # torchvision AlexNet conv1
        (224, 7, 2, 3, 112),  # ResNet stem
        (7, 3, 3, 0, 2),  # the lecture's 7x7 with 3x3 at stride 3: one row left over
        (7, 3, 2, 0, 3),
    ],
)
def test_conv_output_size(n, k, s, p, expected):
    assert models.conv_output_size(n, k, s, p) == expected


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_same_padding_keeps_the_size_at_stride_one(k):
    assert models.conv_output_size(13, k, 1, k // 2) == 13


def test_strict_rejects_a_stride_that_does_not_tile():
    assert models.conv_output_size(7, 3, 2, 0, strict=True) == 3
    with pytest.raises(ValueError, match=r"stride s=3 does not tile .* n=7"):
        models.conv_output_size(7, 3, 3, 0, strict=True)


def test_a_window_larger_than_the_padded_input_raises_with_the_formula():
    with pytest.raises(ValueError, match=r"k=5 .* n=4") as error:
        models.conv_output_size(4, 5, 1, 0)
    assert FORMULA in str(error.value)


def test_lenet5_at_28x28_names_C5_and_shows_the_formula():
    model = models.create("lenet5", num_classes=10)
    with pytest.raises(ValueError) as error:
        abstract_init(model, (28, 28, 1))  # S4 leaves a 4x4 map for C5's 5x5 kernel
    message = str(error.value)
    assert message.startswith("C5:")
    assert FORMULA in message and "floor((4 + 2*0 - 5) / 1) + 1 = 0" in message
    assert "n=4" in message and "k=5" in message and "s=1" in message and "p=0" in message


def test_the_error_also_comes_before_xla_under_jit():
    model = models.create("lenet5", num_classes=10)
    with pytest.raises(ValueError, match="^C5:"):
        jax.jit(lambda x: model.init(jax.random.key(0), x))(jnp.zeros((1, 28, 28, 1)))


def test_the_error_names_the_full_path_of_a_nested_layer():
    with pytest.raises(ValueError, match=r"^mixed3/branch3x3/conv: .*n=1"):
        abstract_init(models.create("inception_v3", num_classes=10), (32, 32, 3))


def test_a_pooling_window_that_does_not_fit_names_the_pool():
    with pytest.raises(ValueError, match=r"^S2: a window of k=2 .* n=1"):
        abstract_init(models.create("lenet5", num_classes=10), (5, 5, 1))


def test_strict_model_rejects_the_pool_that_drops_a_row():
    abstract_init(models.create("typical_cnn", num_classes=10), (28, 28, 1))  # 11 -> 5 silently
    with pytest.raises(ValueError, match=r"^pool2: stride s=2 does not tile .* n=11"):
        abstract_init(models.create("typical_cnn", num_classes=10, strict=True), (28, 28, 1))


def test_strict_model_accepts_inputs_that_tile():
    logits, _ = abstract_init(models.create("lenet5", num_classes=10, strict=True), (32, 32, 1))
    assert logits.shape == (1, 10)


def test_ceil_mode_max_pool_matches_pytorch():
    x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)  # (B, L, C) = [1, 2, 3, 4, 5]
    pooled = layers.MaxPool((2,), ceil_mode=True).apply({}, x)
    np.testing.assert_array_equal(pooled[0, :, 0], [2, 4, 5])  # the last window holds only the 5
    floor = layers.MaxPool((2,)).apply({}, x)
    np.testing.assert_array_equal(floor[0, :, 0], [2, 4])
    # GoogLeNet's stem pool: 112 -> 56 with ceil mode, 55 without.
    assert layers.MaxPool((3, 3), (2, 2), ceil_mode=True).apply({}, jnp.zeros((1, 112, 112, 1))).shape[1] == 56
    # PyTorch drops a last window that would start in the padding: n=5, k=2, s=2, p=1
    # gives ceil(5 / 2) + 1 = 4 windows, the last starting at 6 = n + p, so 3.
    assert layers.MaxPool((2,), padding=1, ceil_mode=True).apply({}, jnp.zeros((1, 5, 1))).shape[1] == 3


def test_same_average_pool_excludes_padding_like_keras():
    x = jnp.arange(9.0).reshape(1, 3, 3, 1)
    pooled = layers.AvgPool((3, 3), (1, 1), "SAME", count_include_pad=False).apply({}, x)
    assert pooled[0, 0, 0, 0] == pytest.approx(np.mean([0, 1, 3, 4]))
    assert pooled[0, 1, 1, 0] == pytest.approx(4.0)


def test_adaptive_average_pool_uses_pytorch_bins():
    x = jnp.arange(5.0).reshape(1, 5, 1, 1)  # bins of 5 -> 3: [0, 2), [1, 4), [3, 5)
    pooled = layers.AdaptiveAvgPool((3, 1)).apply({}, x)
    np.testing.assert_allclose(pooled[0, :, 0, 0], [0.5, 2.0, 3.5])


def test_local_response_norm_follows_the_alexnet_formula():
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 8)).astype(np.float32) * 10
    got = layers.LocalResponseNorm().apply({}, jnp.asarray(x))
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = np.empty_like(x)
    for c in range(8):
        window = x[..., max(0, c - n // 2) : min(8, c + n // 2 + 1)]
        expected[..., c] = x[..., c] / (k + alpha * np.sum(window**2, axis=-1)) ** beta
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_drop_path_drops_whole_examples_only_in_training():
    x = jnp.ones((64, 2, 2, 3))
    drop = layers.DropPath(0.5)
    np.testing.assert_array_equal(drop.apply({}, x, deterministic=True), x)
    y = drop.apply({}, x, deterministic=False, rngs={"dropout": dropout_key()})
    per_example = np.unique(np.asarray(y).reshape(64, -1), axis=1)
    assert per_example.shape[1] == 1  # each example is all kept (x 2) or all dropped
    assert set(np.unique(per_example)) == {0.0, 2.0}


@pytest.mark.parametrize(
    "shape, window",
    [((2, 9, 3), (2,)), ((2, 8, 8, 3), (2, 2)), ((2, 11, 7, 3), (2, 3)), ((1, 4, 6, 6, 2), (2, 3, 2))],
)
@pytest.mark.parametrize("pool, reference", [(layers.MaxPool, nn.max_pool), (layers.AvgPool, nn.avg_pool)])
def test_tiling_pool_equals_reduce_window_with_its_gradient(shape, window, pool, reference):
    """Windows that tile the input (a VALID remainder dropped) pool through a reshaped view:
    the same values and, without ties (random inputs), the same gradient as flax's pooling."""
    x = jax.random.normal(jax.random.key(0), shape)
    ours = lambda x: pool(window).apply({}, x)  # noqa: E731
    theirs = lambda x: reference(x, window, window, "VALID")  # noqa: E731
    np.testing.assert_array_equal(ours(x), theirs(x))
    cotangent = jax.random.normal(jax.random.key(1), theirs(x).shape)
    grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * cotangent))(x)  # noqa: E731
    np.testing.assert_allclose(grad(ours), grad(theirs), rtol=1e-6, atol=1e-7)


def test_max_pool_splits_the_gradient_of_a_tie():
    """jnp.max's rule at a tie (all-zero windows after a ReLU): the gradient is shared."""
    grad = jax.grad(lambda x: jnp.sum(layers.MaxPool((2, 2)).apply({}, x)))(jnp.zeros((1, 2, 2, 1)))
    np.testing.assert_array_equal(grad[0, :, :, 0], [[0.25, 0.25], [0.25, 0.25]])
