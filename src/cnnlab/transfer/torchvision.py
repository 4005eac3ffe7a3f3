"""torchvision state dicts, from `.safetensors` (read here, without torch) or `.pth`.

A `.pth` file is opened only when torch is installed, and only with
`torch.load(..., weights_only=True)`: tensors and plain containers, never
arbitrary pickled objects.

The mappings follow torchvision's module names layer by layer: resnet18-152
(`layer1.0.conv1.weight`, `layer1.0.downsample.0.weight`, `fc.weight`),
vgg11-19 and their `_bn` variants (`features.<i>`, `classifier.0/3/6`),
alexnet (`alexnet_tv`), googlenet (`inception3a.branch2.1.conv.weight`,
`aux1.fc1.weight`), squeezenet1_0/1_1 and convnext_tiny. Layouts differ: a
conv's weight is (O, I, kh, kw) in PyTorch and (kh, kw, I, O) in Flax; a
Linear's is (out, in); and the first Linear after a flatten reads (C, H, W)
features in PyTorch and (H, W, C) features in Flax, so its input axis is
reordered. `num_batches_tracked` counters have no Flax counterpart and are
skipped. Note that torchvision's pretrained googlenet expects
`transform_input=True` preprocessing, which is not part of the weights.
"""

import json
import re
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import numpy as np

from cnnlab.models.squeezenet import LAYOUTS as SQUEEZENET_LAYOUTS
from cnnlab.models.vgg import CONFIGS as VGG_CONFIGS
from cnnlab.transfer.mapping import (IDENTITY, TORCH_CONV, TORCH_LAYER_SCALE, TORCH_LINEAR, Entry, Layer, WeightFileError,
                                     torch_flatten_linear)  # fmt: skip

FAMILIES = ("ResNet", "VGG", "AlexNetTV", "GoogLeNet", "SqueezeNet", "ConvNeXt")
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}  # fmt: skip


def ignored(key: str) -> bool:
    """File tensors with no Flax counterpart: BatchNorm's update counters."""
    return key.endswith("num_batches_tracked")


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a `.safetensors` file, as read-only views of the memory-mapped file."""
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as error:
        raise WeightFileError(f"{path}: cannot open it ({error})") from error
    if raw.size < 8:
        raise WeightFileError(f"{path}: {raw.size} bytes, too short for a safetensors header (truncated?)")
    header_size = int(raw[:8].view("<u8")[0])
    try:
        header = json.loads(bytes(raw[8 : 8 + header_size]))
    except ValueError as error:  # also a header cut short by truncation
        raise WeightFileError(f"{path}: not a safetensors file, or truncated in its header ({error})") from error
    start, tensors = 8 + header_size, {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        dtype = _safetensors_dtype(info["dtype"], path)
        begin, end = info["data_offsets"]
        if start + end > raw.size:
            raise WeightFileError(f"{path}: truncated: tensor {key} needs bytes up to {start + end}, the file has "
                                  f"{raw.size}")  # fmt: skip
        shape = tuple(info["shape"])
        if end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise WeightFileError(f"{path}: tensor {key} has {end - begin} bytes for shape {shape} {info['dtype']}")
        tensors[key] = raw[start + begin : start + end].view(dtype).reshape(shape)
    return tensors


def _safetensors_dtype(name: str, path: Path):
    if name == "BF16":
        import ml_dtypes  # a JAX dependency

        return ml_dtypes.bfloat16
    if name not in SAFETENSORS_DTYPES:
        raise WeightFileError(f"{path}: tensor dtype {name} is not supported")
    return SAFETENSORS_DTYPES[name]


def read_pth(path: Path) -> dict[str, np.ndarray]:
    """A PyTorch state dict, loaded with `weights_only=True` (no arbitrary unpickling)."""
    try:
        import torch
    except ImportError as error:
        raise WeightFileError(f"{path}: reading .pth needs torch; convert it to .safetensors, or "
                              "`pip install torch`") from error  # fmt: skip
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for a forbidden object, RuntimeError for a damaged zip
        raise WeightFileError(f"{path}: cannot load it as a state dict with weights_only=True "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:300]})") from error  # fmt: skip
    if isinstance(state, dict) and isinstance(state.get("state_dict", state.get("model")), dict):
        state = state.get("state_dict", state.get("model"))  # a training checkpoint that wraps the state dict
    if not isinstance(state, dict):
        raise WeightFileError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in state.items()
            if isinstance(v, torch.Tensor)}  # fmt: skip


def entries(model: nn.Module, layers: Sequence[Layer]) -> list[Entry]:
    """The mapping of `model`'s variables to torchvision's state-dict keys."""
    family = type(model).__name__
    if family not in FAMILIES or (family == "ResNet" and model.conv_bias) or (family == "GoogLeNet"
                                                                              and not model.batch_norm):
        raise ValueError(f"no torchvision mapping for {family}; torchvision weights are read for resnet18-152, "
                         "vgg11-19 (and _bn), alexnet_tv, googlenet, squeezenet1_0/1_1 and convnext_tiny")  # fmt: skip
    names = _module_names(family, model)
    out = []
    for layer in layers:
        prefix = names(layer.path)
        if layer.kind == "other":  # ConvNeXt's layer scale, a parameter of the block itself
            out.append(Entry(layer.target("layer_scale"), f"{prefix}.layer_scale", TORCH_LAYER_SCALE))
            continue
        for name in layer.variables:
            out.append(Entry(layer.target(name), f"{prefix}.{_TORCH_NAMES[layer.kind][name]}",
                             _converter(family, model, layer, name)))  # fmt: skip
    return out


_TORCH_NAMES = {
    "conv": {"kernel": "weight", "bias": "bias"},
    "dense": {"kernel": "weight", "bias": "bias"},
    "batch_norm": {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"},
    "layer_norm": {"scale": "weight", "bias": "bias"},
}


def _converter(family: str, model: nn.Module, layer: Layer, name: str):
    if name != "kernel":
        return IDENTITY
    if layer.kind == "conv":
        return TORCH_CONV
    # The first Linear after a flatten of (C, H, W) features: VGG's fc1, AlexNet's fc6, GoogLeNet's aux fc1.
    flattened = {"VGG": ("fc1", lambda: _last_vgg_width(model)), "AlexNetTV": ("fc6", lambda: 256)}
    if family in flattened and layer.path == (flattened[family][0],):
        return torch_flatten_linear(flattened[family][1]())
    if family == "GoogLeNet" and layer.path[-1] == "fc1":
        return torch_flatten_linear(128)  # the aux head's 1x1 conv to 128 channels
    return TORCH_LINEAR


def _last_vgg_width(model: nn.Module) -> int:
    last = VGG_CONFIGS[model.config][-1][-1]
    return last[0] if isinstance(last, tuple) else last


def _module_names(family: str, model: nn.Module):
    """A function from a cnnlab module path to the torchvision module name."""
    if family == "ResNet":
        return _resnet_name
    if family == "VGG":
        return _indexed(_vgg_indices(model.config, model.batch_norm), {"fc1": "classifier.0", "fc2": "classifier.3",
                                                                        "predictions": "classifier.6"})  # fmt: skip
    if family == "AlexNetTV":
        convs = {f"conv{i}": f"features.{j}" for i, j in zip(range(1, 6), (0, 3, 6, 8, 10))}
        return _indexed(convs, {"fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"})
    if family == "GoogLeNet":
        return _googlenet_name
    if family == "SqueezeNet":
        return _squeezenet_name(model.version)
    return _convnext_name


def _indexed(features: dict[str, str], classifier: dict[str, str]):
    table = {**features, **classifier}
    return lambda path: table[path[0]]


def _vgg_indices(config: str, batch_norm: bool) -> dict[str, str]:
    """block<s>_conv<i> (and _bn) -> features.<index>, walking torchvision's nn.Sequential."""
    table, index = {}, 0
    for stage, specs in enumerate(VGG_CONFIGS[config], start=1):
        convs = [spec for spec in specs if spec != "LRN"]
        for i, _ in enumerate(convs, start=1):
            table[f"block{stage}_conv{i}"] = f"features.{index}"
            index += 1
            if batch_norm:
                table[f"block{stage}_conv{i}_bn"] = f"features.{index}"
                index += 1
            index += 1  # ReLU
        index += 1  # MaxPool2d
    return table


def _resnet_name(path: tuple[str, ...]) -> str:
    if len(path) == 1:  # conv1, bn1, fc
        return path[0]
    block = path[0].replace("_", ".")  # layer1_0 -> layer1.0
    part = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(path[1], path[1])
    return f"{block}.{part}"


def _googlenet_name(path: tuple[str, ...]) -> str:
    top = {"aux_4a": "aux1", "aux_4d": "aux2"}.get(path[0], path[0])
    branch = {"branch2_reduce": "branch2.0", "branch2": "branch2.1", "branch3_reduce": "branch3.0",
              "branch3": "branch3.1", "branch4": "branch4.1"}  # fmt: skip
    return ".".join([top, *(branch.get(p, p) for p in path[1:])])


def _squeezenet_name(version: str):
    _, sequence = SQUEEZENET_LAYOUTS[version]
    fires, index = {}, 2  # features.0 is the stem conv, features.1 its ReLU
    for spec in sequence:
        if spec != "M":
            fires[f"fire{len(fires) + 2}"] = f"features.{index}"
        index += 1
    table = {"conv1": "features.0", "classifier": "classifier.1", **fires}
    return lambda path: ".".join([table[path[0]], *path[1:]])


def _convnext_name(path: tuple[str, ...]) -> str:
    top = path[0]
    fixed = {"stem_conv": "features.0.0", "stem_norm": "features.0.1", "head_norm": "classifier.0",
             "head": "classifier.2"}  # fmt: skip
    if top in fixed:
        return fixed[top]
    if m := re.match(r"downsample(\d)_(norm|conv)$", top):
        return f"features.{2 * int(m.group(1))}.{0 if m.group(2) == 'norm' else 1}"
    stage, block = (int(n) for n in re.match(r"stage(\d)_(\d+)$", top).groups())
    prefix = f"features.{2 * stage - 1}.{block}"
    sub = {"dwconv": "block.0", "norm": "block.2", "pwconv1": "block.3", "pwconv2": "block.5"}
    return prefix if len(path) == 1 else f"{prefix}.{sub[path[1]]}"

