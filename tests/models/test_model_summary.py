"""The Keras-style summary: the lecture's typical CNN row by row, depth, FLOPs, the CLI."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from cnnlab import models
from cnnlab.cli.summary import summary_text
from cnnlab.models.summary import forward_macs

# The lecture's Keras summary of the typical CNN: (output shape, Param #) per row.
LECTURE_TABLE = [
    ((26, 26, 8), 80),
    ((13, 13, 8), 0),
    ((11, 11, 16), 1168),
    ((5, 5, 16), 0),
    ((400,), 0),
    ((64,), 25664),
    ((64,), 0),
    ((10,), 650),
]


@pytest.fixture(scope="module")
def typical_cnn_summary():
    return models.summarize(models.create("typical_cnn", num_classes=10), (28, 28, 1), name="typical_cnn")


def test_typical_cnn_summary_matches_the_lecture_row_by_row(typical_cnn_summary):
    rows = [(row.output_shape, row.params) for row in typical_cnn_summary.rows]
    assert rows == LECTURE_TABLE
    assert [row.layer_type for row in typical_cnn_summary.rows] == [
        "Conv", "MaxPool", "Conv", "MaxPool", "Flatten", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    assert (typical_cnn_summary.total, typical_cnn_summary.trainable, typical_cnn_summary.non_trainable) == (
        27_562, 27_562, 0,
    )  # fmt: skip


def test_rendered_table_has_keras_columns_totals_and_flops(typical_cnn_summary):
    text = typical_cnn_summary.render()
    lines = text.splitlines()
    assert lines[0] == 'Model: "typical_cnn"'
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    row = next(line for line in lines if line.lstrip().startswith("conv2 (Conv)"))
    assert row.split()[2:] == ["(None,", "11,", "11,", "16)", "1,168"]
    for expected in ("Total params: 27,562", "Trainable params: 27,562", "Non-trainable params: 0"):
        assert expected in lines
    assert "Forward FLOPs per image:" in lines[-1]


# REFERENCE.md's forward FLOPs per image (2 x multiply-adds). XLA also counts bias
# adds, activations and pooling, and skips the taps that fall on zero padding.
@pytest.mark.parametrize(
    "name, num_classes, reference, tolerance",
    [("lenet5", 10, 0.83e6, 0.03), ("vgg16", 1000, 30.9e9, 0.05), ("resnet50", 1000, 8.2e9, 0.05),
     ("mobilenet_v1", 1000, 1.14e9, 0.05)],
)  # fmt: skip
def test_forward_flops_match_the_reference_anchors(name, num_classes, reference, tolerance):
    model = models.create(name, num_classes=num_classes)
    summary = models.summarize(model, models.default_input_shape(name))
    assert summary.flops == pytest.approx(reference, rel=tolerance)


def test_batch_norm_statistics_are_non_trainable_but_counted_in_their_row():
    summary = models.summarize(models.create("mobilenet_v1", num_classes=1000), (224, 224, 3), flops=False)
    assert (summary.trainable, summary.non_trainable) == (4_231_976, 21_888)
    first_bn = next(row for row in summary.rows if row.layer_type == "BatchNorm")
    assert (first_bn.name, first_bn.params) == ("conv1_bn", 4 * 32)  # scale, bias, mean, var like Keras
    assert sum(row.params for row in summary.rows) == summary.total


def test_depth_collapses_blocks_and_keeps_the_totals():
    model = models.create("resnet18", num_classes=10, cifar_stem=True)
    full = models.summarize(model, (32, 32, 3), flops=False)
    collapsed = models.summarize(model, (32, 32, 3), depth=1, flops=False)
    assert [row.name for row in collapsed.rows] == [
        "conv1", "bn1", *(f"layer{s}_{i}" for s in range(1, 5) for i in range(2)), "avgpool", "fc",
    ]  # fmt: skip
    assert collapsed.rows[2].layer_type == "BasicBlock" and collapsed.rows[2].output_shape == (32, 32, 64)
    assert len(full.rows) > len(collapsed.rows)
    assert sum(r.params for r in full.rows) == sum(r.params for r in collapsed.rows) == full.total == 11_183_562


def test_cli_summary_uses_the_data_config_or_model_input_shape(compose):
    text = summary_text(compose("model=typical_cnn", "model.input_shape=[28,28,1]"))
    assert "Total params: 27,562" in text and "(None, 26, 26, 8)" in text
    # input_shape null: the data config's 32x32x1 digits, 10 classes.
    lenet = summary_text(compose("model=lenet5"))
    assert 'Model: "lenet5"' in lenet and "Total params: 61,706" in lenet


def test_cli_summary_depth_option(compose):
    text = summary_text(compose("model=resnet18", "model.cifar_stem=true", "+depth=1"))
    table, fields = text.split("Receptive fields")  # the receptive fields stay per layer
    assert "layer1_0 (BasicBlock)" in table and "layer1_0/conv1" not in table
    assert "layer1_0/conv1 (conv)" in fields


# The lecture's ResNet table: 1.8, 3.6, 3.8, 7.6 and 11.3 x 10^9 "FLOPs" (multiply-adds) at 224x224.
LECTURE_RESNET_MACS = {"resnet18": 1.8e9, "resnet34": 3.6e9, "resnet50": 3.8e9, "resnet101": 7.6e9, "resnet152": 11.3e9}


@pytest.mark.parametrize("name", sorted(LECTURE_RESNET_MACS))
def test_resnet_multiply_adds_match_the_lecture(name):
    """The paper's layout (stride in the first 1x1: v1) gives the lecture's row within 5%; the
    default torchvision layout (v1.5, stride in the 3x3) costs more in the deep ResNets."""
    x = jnp.zeros((1, 224, 224, 3))
    model = models.create(name, num_classes=1000, stride_in_1x1=True)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    assert forward_macs(model, variables, x) == pytest.approx(LECTURE_RESNET_MACS[name], rel=0.05)
    if name == "resnet50":  # v1.5: 4.09 x 10^9, as torchvision's ResNet-50 reports
        v15 = models.create(name, num_classes=1000)
        assert forward_macs(v15, variables, x) == pytest.approx(4.09e9, rel=0.01)


def test_summary_prints_multiply_adds_beside_flops(compose):
    text = summary_text(compose("model=typical_cnn", "model.input_shape=[28,28,1]"))
    assert "Forward multiply-adds per image: 214,304" in text and "Forward FLOPs per image:" in text


@pytest.mark.parametrize("name, total", [("typical_cnn", "27,562"), ("resnet18", "11,699,112"), ("alexnet", None),
                                         ("alexnet_tv", None), ("inception_v3", None)])  # fmt: skip
def test_the_summary_command_sizes_a_model_for_its_designed_input(tmp_path, name, total):
    """Without a data set named: the designed input and class count; and no run directory is written."""
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.summary", f"model={name}"], cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Total params:" in proc.stdout and (total is None or f"Total params: {total}" in proc.stdout)
    assert list(tmp_path.iterdir()) == [], "cnnlab-summary wrote files"
    if name == "resnet18":
        assert "Trainable params: 11,689,512" in proc.stdout
