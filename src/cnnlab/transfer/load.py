"""`load_weights(path, model=name)`: Keras HDF5 and torchvision files as Flax variables.

    from cnnlab import models, transfer
    variables = transfer.load_weights("vgg16_weights_tf_dim_ordering_tf_kernels.h5", model="vgg16")
    model = models.create("vgg16", num_classes=1000)
    logits = model.apply(variables, images)

The format follows the file: `.h5`/`.hdf5` (either Keras layout), `.safetensors`
(torchvision names, read without torch), `.pth`/`.pt` (torch, weights only).
`num_classes` is read from the file's classifier unless given; model options
(e.g. `batch_norm=True` for vgg16_bn) and the input size (which fixes VGG's
and AlexNet's first Linear) are passed through.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn

from cnnlab import models
from cnnlab.transfer import heads, keras_h5, torchvision
from cnnlab.transfer.mapping import WeightFileError, assemble, layers_of, variable_shapes

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SUFFIXES = {".h5": "keras", ".hdf5": "keras", ".safetensors": "safetensors", ".pth": "pth", ".pt": "pth"}


def load_weights(path: str | Path, model: str, *, input_shape: Sequence[int] | None = None,
                 num_classes: int | None = None, **options: Any) -> dict:  # fmt: skip
    """The Flax variables (`params`, and `batch_stats` where the model has them) in `path`
    for `models.create(model, num_classes=<as in the file>, **options)`.

    `path` is a Keras or torchvision weight file, or a cnnlab run directory (its best
    checkpoint) or orbax checkpoint directory, as `transfer.from_run` takes them.

    Raises WeightFileError for a file that cannot be read (naming it), and
    WeightMismatchError listing the missing, unexpected and mismatched tensors.
    """
    module = models.create(model, num_classes=num_classes or 1000, **options)
    input_shape = tuple(input_shape or models.default_input_shape(model))
    if Path(path).expanduser().is_dir():  # a run directory: the variables as saved, whatever their class count
        from cnnlab.transfer import checkpoints

        return checkpoints.read(path, model=module, input_shape=input_shape).variables
    return load_into(module, path, input_shape, num_classes)


def load_into(module: nn.Module, path: str | Path, input_shape: Sequence[int], num_classes: int | None = None) -> dict:
    """`load_weights` for a module already built (its `num_classes` is replaced by the file's)."""
    path = Path(path)
    tensors, make_entries, ignore = _open(path)
    shapes, order = variable_shapes(module, input_shape)
    entries = make_entries(module, layers_of(shapes, order))
    if num_classes is None:  # the classifier's bias in the file says how many classes it has
        head_bias = ("params", *heads.head_paths(module)[0], "bias")
        key = next((e.key for e in entries if e.target == head_bias), None)
        if key in tensors and tensors[key].shape[0] != module.num_classes:
            module = module.clone(num_classes=int(tensors[key].shape[0]))
            shapes, order = variable_shapes(module, input_shape)
            entries = make_entries(module, layers_of(shapes, order))
    return assemble(shapes, entries, tensors, source=str(path), ignore=ignore)


def file_format(path: Path) -> str:
    """keras, safetensors or pth, from the suffix, else from the first bytes."""
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    with open(path, "rb") as f:
        head = f.read(8)
    if head == HDF5_SIGNATURE:
        return "keras"
    if head[:2] == b"PK":  # torch.save writes a zip archive
        return "pth"
    raise WeightFileError(f"{path}: unknown weight format; expected Keras .h5, .safetensors or .pth")


def _open(path: Path):
    """(tensors by key, mapping function, keys to ignore) for the file's format."""
    if not path.is_file():
        raise WeightFileError(f"{path}: no such file")
    kind = file_format(path)
    if kind == "keras":
        weights = keras_h5.read(path)
        return keras_h5.flatten(weights), lambda m, layers: keras_h5.entries(m, layers, list(weights)), _nothing
    tensors = torchvision.read_safetensors(path) if kind == "safetensors" else torchvision.read_pth(path)
    return tensors, torchvision.entries, torchvision.ignored


def _nothing(key: str) -> bool:
    return False
