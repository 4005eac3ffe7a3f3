"""Keras applications weights, read with h5py (no TensorFlow), mapped layer by layer.

Two HDF5 layouts, both read as `{layer name: [arrays in Keras's order]}`:

- legacy `.h5` (the published ImageNet files, `save_weights("x.h5")` in Keras 2):
  the root (or its `model_weights` group) lists `layer_names`; each layer's
  group lists its `weight_names`, e.g. `block1_conv1/kernel:0`, in order;
- Keras 3 `.weights.h5`: `layers/<object name>/vars/0, 1, ...`, where the
  `vars` group's `name` attribute is the layer's name.

Keras's weight order per layer is the one its own loader relies on: Conv2D and
Dense (kernel, bias), BatchNormalization (gamma, beta, moving_mean,
moving_variance; no gamma with scale=False), DepthwiseConv2D (kernel),
SeparableConv2D (depthwise kernel, pointwise kernel). A tensor's key here is
`layer[i]`, e.g. `block1_conv1[0]`.

The mappings cover the lecture's list: VGG16, VGG19, InceptionV3, Xception,
ResNet50 (`resnet50_keras`) and MobileNet. cnnlab names most layers as Keras
does; the exceptions are explicit below (ResNet50's `conv2_block1_1_conv`, and
the layers Keras leaves unnamed: InceptionV3's every conv and BatchNorm, and
Xception's shortcuts, which Keras numbers `conv2d`, `conv2d_1`, ... in the
order it creates them).
"""

import re
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import numpy as np

from cnnlab.transfer.mapping import IDENTITY, KERAS_DEPTHWISE, Converter, Entry, Layer, WeightFileError

FAMILIES = ("VGG", "MobileNetV1", "ResNet", "Xception", "InceptionV3")


def read(path: Path) -> dict[str, list[np.ndarray]]:
    """{layer name: its weights in Keras's order} from either HDF5 layout."""
    import h5py  # only needed for Keras files

    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            if "layer_names" in root.attrs:
                return _read_legacy(root)
            if "layers" in f:
                return _read_keras3(f["layers"], path)
            raise WeightFileError(f"{path}: an HDF5 file, but neither Keras layout (no `layer_names` attribute, "
                                  "no `layers` group)")  # fmt: skip
    except (OSError, KeyError, RuntimeError) as error:  # h5py: truncated, not HDF5, unreadable dataset
        raise WeightFileError(f"{path}: cannot read it as a Keras HDF5 weight file (truncated or not HDF5?): "
                              f"{error}") from error  # fmt: skip


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_legacy(root) -> dict[str, list[np.ndarray]]:
    weights = {}
    for layer in map(_text, root.attrs["layer_names"]):
        names = [_text(n) for n in root[layer].attrs.get("weight_names", [])]
        if names:
            weights[layer] = [np.asarray(root[layer][name]) for name in names]
    return weights


def _read_keras3(layers, path) -> dict[str, list[np.ndarray]]:
    weights = {}

    def visit(name, node):
        if name.split("/")[-1] != "vars" or not len(node):
            return
        if "name" not in node.attrs:  # older Keras 3 files do not record the layer's own name
            raise WeightFileError(f"{path}: layers/{name} has no `name` attribute; re-save it with Keras >= 3.6")
        weights[_text(node.attrs["name"])] = [np.asarray(node[k]) for k in sorted(node, key=int)]

    layers.visititems(visit)
    return weights


def flatten(weights: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """{"layer[i]": array}: the keys that mappings name."""
    return {f"{layer}[{i}]": array for layer, arrays in weights.items() for i, array in enumerate(arrays)}


def entries(model: nn.Module, layers: Sequence[Layer], file_layers: Sequence[str]) -> list[Entry]:
    """The mapping of `model`'s variables to the Keras file's tensors."""
    family = type(model).__name__
    if family not in FAMILIES or (family == "VGG" and model.batch_norm) or (family == "ResNet" and not model.conv_bias):
        raise ValueError(f"no Keras mapping for {family}{' with batch_norm' if family == 'VGG' else ''}; Keras "
                         "weights are read for vgg16, vgg19, inception_v3, xception, resnet50_keras and mobilenet_v1")  # fmt: skip
    unnamed = {kind: _unnamed(file_layers, kind) for kind in ("conv2d", "batch_normalization")}
    counters = {"conv2d": 0, "batch_normalization": 0}
    out = []
    for layer in layers:
        name, start, kernel = _keras_layer(family, layer)
        if name is None:  # a layer Keras leaves unnamed: the next one of its kind, in creation order
            kind = "batch_normalization" if layer.kind == "batch_norm" else "conv2d"
            k = counters[kind]
            counters[kind] += 1
            name = unnamed[kind][k] if k < len(unnamed[kind]) else f"<unnamed {kind} #{k + 1}>"
        out += _expand(layer, name, start, kernel)
    return out


def _keras_layer(family: str, layer: Layer) -> tuple[str | None, int, Converter]:
    """(Keras layer name or None for an unnamed one, index of the first weight, kernel layout)."""
    top = layer.path[0]
    if family == "MobileNetV1" and top.startswith("conv_dw_") and layer.kind == "conv":
        return top, 0, KERAS_DEPTHWISE
    if family == "Xception":
        if top.endswith(("_shortcut", "_shortcut_bn")):
            return None, 0, IDENTITY
        if len(layer.path) == 2:  # SeparableConv2D: (depthwise kernel, pointwise kernel) of one Keras layer
            return (top, 0, KERAS_DEPTHWISE) if layer.path[1] == "depthwise" else (top, 1, IDENTITY)
    if family == "InceptionV3" and top != "predictions":
        return None, 0, IDENTITY
    if family == "ResNet":
        return _resnet50_name(layer.path), 0, IDENTITY
    return top, 0, IDENTITY


def _resnet50_name(path: tuple[str, ...]) -> str:
    """cnnlab's torchvision-style names -> keras.applications.ResNet50's."""
    if path == ("fc",):
        return "predictions"
    if path in (("conv1",), ("bn1",)):
        return "conv1_conv" if path[0] == "conv1" else "conv1_bn"
    stage, block = (int(n) for n in re.match(r"layer(\d)_(\d+)", path[0]).groups())
    prefix = f"conv{stage + 1}_block{block + 1}"
    part, index = re.match(r"(conv|bn|downsample_conv|downsample_bn)(\d?)", path[1]).groups()
    if part.startswith("downsample"):
        return f"{prefix}_0_{part.split('_')[1]}"
    return f"{prefix}_{index}_{part}"


def _expand(layer: Layer, keras_name: str, start: int, kernel: Converter) -> list[Entry]:
    """One Entry per variable of `layer`, numbered in Keras's weight order from `start`."""
    order = ("scale", "bias", "mean", "var") if layer.kind == "batch_norm" else ("kernel", "bias")
    names = [n for n in order if layer.has(n)]
    return [Entry(layer.target(n), f"{keras_name}[{start + i}]", kernel if n == "kernel" else IDENTITY)
            for i, n in enumerate(names)]  # fmt: skip


def _unnamed(file_layers: Sequence[str], kind: str) -> list[str]:
    """Keras's auto-named layers of a kind (`conv2d`, `conv2d_1`, ...) in creation order."""
    pattern = re.compile(rf"^{kind}(?:_(\d+))?$")
    matches = [(int(m.group(1) or 0), name) for name in file_layers if (m := pattern.match(name))]
    return [name for _, name in sorted(matches)]
