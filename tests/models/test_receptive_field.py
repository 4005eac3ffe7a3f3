"""Receptive fields: the recurrences against hand computation, and against the gradient of a unit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnlab import backend, models
from cnnlab.cli.summary import summary_text
from cnnlab.models import receptive_field as rf

# LeNet-5 at 32x32: 5x5 VALID convolutions (k - 1 = 4, no padding: start += 2 j) and
# 2x2/2 pools (k - 1 = 1: start += 0.5 j, then j doubles).
#   C1  r = 1 + 4*1  = 5    j = 1   start = 0   + 2*1   = 2
#   S2  r = 5 + 1*1  = 6    j = 2   start = 2   + 0.5*1 = 2.5
#   C3  r = 6 + 4*2  = 14   j = 2   start = 2.5 + 2*2   = 6.5
#   S4  r = 14 + 1*2 = 16   j = 4   start = 6.5 + 0.5*2 = 7.5
#   C5  r = 16 + 4*4 = 32   j = 4   start = 7.5 + 2*4   = 15.5   (the whole 32x32 input, centred)
LENET5 = [("C1", 5, 1, 2.0), ("S2", 6, 2, 2.5), ("C3", 14, 2, 6.5), ("S4", 16, 4, 7.5), ("C5", 32, 4, 15.5)]


def vgg16_by_hand() -> list[tuple[str, int, int, float]]:
    """VGG-16: 3x3 SAME convolutions (pad 1: r += 2 j, start unchanged), a 2x2/2 pool after each stage."""
    rows, r, j, start = [], 1, 1, 0.0
    for stage, convs in enumerate([2, 2, 3, 3, 3], start=1):
        for i in range(1, convs + 1):
            r += 2 * j
            rows.append((f"block{stage}_conv{i}", r, j, start))
        r, start, j = r + j, start + 0.5 * j, 2 * j
        rows.append((f"block{stage}_pool", r, j, start))
    return rows


def test_vgg16_by_hand_is_the_known_table():
    """The hand computation itself, against the published VGG-16 figures (212 at the last pool)."""
    table = {name: (r, j) for name, r, j, _ in vgg16_by_hand()}
    assert table["block1_conv2"] == (5, 1) and table["block3_conv3"] == (40, 4)
    assert table["block4_pool"] == (100, 16) and table["block5_pool"] == (212, 32)


@pytest.mark.parametrize("name, input_shape, expected", [
    ("lenet5", (32, 32, 1), LENET5),
    ("vgg16", (224, 224, 3), vgg16_by_hand()),
])  # fmt: skip
def test_receptive_fields_match_the_hand_computation(name, input_shape, expected):
    layers = models.receptive_fields(models.create(name, num_classes=10), input_shape)
    got = [(layer.name, layer.field.size, layer.field.jump, layer.field.start) for layer in layers]
    assert got == [(n, (r, r), (j, j), (s, s)) for n, r, j, s in expected]


def test_chain_applies_the_recurrences_with_dilation():
    """A 3x3 conv of dilation 2 spans 5 pixels: k_eff = 2 (3 - 1) + 1."""
    fields = rf.chain([rf.Window((3, 3), dilation=(2, 2)), rf.Window((2, 2), stride=(2, 2)), rf.Window((3, 3))])
    assert [f.size[0] for f in fields] == [5, 6, 10] and [f.jump[0] for f in fields] == [1, 2, 2]
    assert [f.start[0] for f in fields] == [2.0, 2.5, 4.5]


def test_a_residual_branch_is_joined_not_chained():
    """ResNet-18's first downsampling block: the 1x1/2 shortcut sees the block's input (43 pixels),
    and the next block sees the union of both paths (67) grown by a 3x3 at jump 8: 83. Chained in
    call order, the shortcut's stride would double the jump once more (and give 99)."""
    resnet18 = models.create("resnet18", num_classes=10)
    layers = {layer.name: layer.field for layer in models.receptive_fields(resnet18, (224, 224, 3))}
    assert layers["layer1_1/conv2"].size == (43, 43)
    assert layers["layer2_0/conv2"].size == (67, 67) and layers["layer2_0/downsample_conv"].size == (43, 43)
    assert layers["layer2_1/conv1"].size == (83, 83) and layers["layer2_1/conv1"].jump == (8, 8)


def test_a_channel_layer_norm_keeps_the_field():
    """ConvNeXt normalizes over channels between its convolutions: the 4x4/4 stem sees 4 pixels,
    the first 7x7 depthwise convolution at jump 4 sees 4 + 6 * 4 = 28, the next 52."""
    convnext = models.create("convnext_tiny", num_classes=10)
    layers = {layer.name: layer.field.size[0] for layer in models.receptive_fields(convnext, (64, 64, 3))}
    assert [layers[n] for n in ("stem_conv", "stage1_0/dwconv", "stage1_1/dwconv")] == [4, 28, 52]


def test_a_model_without_convolutions_has_no_rows():
    assert models.receptive_fields(models.create("mlp", num_classes=10), (28, 28, 1)) == []
    assert "no convolution or pooling layer" in rf.render([])


def test_summary_prints_the_receptive_field_table(compose):
    text = summary_text(compose("model=lenet5"))
    assert "Receptive fields" in text
    row = next(line for line in text.splitlines() if line.startswith(" C5 (conv)"))
    assert row.split()[2:] == ["5", "1", "32", "4", "15.5"]  # kernel, stride, field, jump, start


# Measured: the input pixels on which one output unit at the centre of a layer depends, as the
# nonzero extent of its gradient. Every kernel reads input channel 0 only, with dyadic taps that sum
# to 1 (centre 1 - n t, the n others t = 2^-m): on an all-ones image every unit whose field lies
# inside the image is exactly 1, so ReLUs pass gradients and each 2x2 max pool is a tie, whose
# gradient jnp.max shares among the tied inputs (the "tiles" pooling): nothing routes the gradient
# to part of the field only, as a max of distinct values would.
TIED_POOLS = backend.Policy("xla", "xla", "tiles")


def dyadic_variables(shapes):
    """Variables of these shapes: such kernels, zero biases (nothing random: no init to compile)."""

    def value(path, x):
        if path[-1].key != "kernel" or len(x.shape) != 4:
            return jnp.zeros(x.shape, x.dtype)
        kh, kw = x.shape[:2]
        others = kh * kw - 1
        tap = 2.0 ** -int(np.ceil(np.log2(2 * others))) if others else 0.0
        taps = np.full((kh, kw), tap, np.float32)
        taps[kh // 2, kw // 2] = 1 - others * tap
        w = np.zeros(x.shape, np.float32)
        w[:, :, 0, :] = taps[:, :, None]
        return jnp.asarray(w)

    return jax.tree_util.tree_map_with_path(value, shapes)


def measured_fields(model, input_shape, names):
    """{layer: (extent, centre)} along H of the gradient of the layer's centre unit (summed over channels)."""
    image = jnp.ones((1, *input_shape))
    variables = dyadic_variables(jax.eval_shape(lambda: model.init(jax.random.key(0), image, train=False)))

    def outputs(x):
        captured = {}

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            path = "/".join(context.module.path)
            if path in names and context.method_name == "__call__":
                captured[path] = out
            return out

        with nn.intercept_methods(record):
            model.apply(variables, x, train=False)
        return [captured[n] for n in names]

    def gradient(x, cotangents):  # (1, H, W, C): d <cotangents, outputs> / d x
        return jax.vjp(outputs, x)[1](cotangents)[0]

    with backend.use(TIED_POOLS):
        maps = jax.jit(outputs)(image)
        gradient = jax.jit(gradient)  # one compile for every layer: the cotangents keep their shapes
        measured = {}
        for i, name in enumerate(names):
            centre = (maps[i].shape[1] - 1) // 2
            assert np.all(np.asarray(maps[i][0, centre, centre]) == 1.0), f"{name}: not on the all-ones plateau"
            cotangents = [jnp.zeros_like(m) for m in maps]
            cotangents[i] = cotangents[i].at[0, centre, centre, :].set(1.0)
            rows = np.flatnonzero(np.abs(np.asarray(gradient(image, cotangents)[0])).sum(axis=(1, 2)))
            measured[name] = (rows[-1] - rows[0] + 1, (rows[0] + rows[-1]) / 2, centre)
    return measured


@pytest.mark.parametrize("name, options, input_shape, expected", [
    ("lenet5", {"activation": "relu", "pooling": "max"}, (32, 32, 1), LENET5),
    # a narrow VGG-16 (the fields do not depend on the widths); at 160 pixels the centre unit's
    # field lies inside the image up to block5_conv1 (132 pixels)
    ("vgg16", {"num_filters": 8, "fc_features": 8}, (160, 160, 3), vgg16_by_hand()[:14]),
])  # fmt: skip
def test_receptive_fields_match_the_gradient_of_a_centre_unit(name, options, input_shape, expected):
    model = models.create(name, num_classes=10, **options)
    computed = {layer.name: layer.field for layer in models.receptive_fields(model, input_shape)}
    measured = measured_fields(model, input_shape, [n for n, *_ in expected])
    for layer, (extent, centre, index) in measured.items():
        field = computed[layer]
        assert extent == field.size[0], layer
        assert centre == field.start[0] + index * field.jump[0], layer  # the start offset, measured
