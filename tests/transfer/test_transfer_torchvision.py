"""torchvision state dicts: key coverage at full size, logits against PyTorch, .safetensors and .pth files."""

import types
import zipfile

import jax
import numpy as np
import pytest
import torchvision_layouts as tv

from cnnlab import models, transfer
from cnnlab.transfer import mapping, torchvision

slow = pytest.mark.slow

# registry name, model options, torchvision layout, torchvision's parameter count (REFERENCE.md)
LAYOUTS = [
    ("resnet18", {}, lambda: tv.resnet(18), 11_689_512),
    pytest.param("resnet34", {}, lambda: tv.resnet(34), 21_797_672, marks=slow),
    ("resnet50", {}, lambda: tv.resnet(50), 25_557_032),
    pytest.param("resnet101", {}, lambda: tv.resnet(101), 44_549_160, marks=slow),
    pytest.param("resnet152", {}, lambda: tv.resnet(152), 60_192_808, marks=slow),
    ("vgg11", {"batch_norm": True}, lambda: tv.vgg("A", True), None),
    pytest.param("vgg13", {}, lambda: tv.vgg("B"), 133_047_848, marks=slow),
    ("vgg16", {}, lambda: tv.vgg("D"), 138_357_544),
    pytest.param("vgg19", {"batch_norm": True}, lambda: tv.vgg("E", True), None, marks=slow),
    ("alexnet_tv", {}, tv.alexnet, 61_100_840),
    ("googlenet", {}, tv.googlenet, None),
    ("googlenet", {"aux_logits": False}, lambda: tv.googlenet(aux=False), 6_624_904),
    pytest.param("squeezenet1_0", {}, lambda: tv.squeezenet("1_0"), 1_248_424, marks=slow),
    ("squeezenet1_1", {}, lambda: tv.squeezenet("1_1"), 1_235_496),
    ("convnext_tiny", {}, tv.convnext, 28_589_128),
]


def entries_for(model, input_shape):
    shapes, order = mapping.variable_shapes(model, input_shape)
    return shapes, torchvision.entries(model, mapping.layers_of(shapes, order))


@pytest.mark.parametrize("name, options, layout, count", LAYOUTS)
def test_mapping_covers_torchvision_state_dict_exactly(name, options, layout, count):
    """Every key of torchvision's state dict maps to a variable of the same size, and back."""
    sd = layout()
    if count is not None:  # the layout written out above is torchvision's own
        assert tv.trainable_count(sd) == count
    model = models.create(name, num_classes=1000, **options)
    shapes, entries = entries_for(model, models.default_input_shape(name))
    tensors = {key: types.SimpleNamespace(shape=shape) for key, shape in sd.items()}
    mapping.check(shapes, entries, tensors, source=name, ignore=torchvision.ignored)  # raises on any gap


def test_one_wrong_shape_is_named_with_both_shapes():
    sd = tv.resnet(18)
    sd["layer3.1.conv2.weight"] = (256, 256, 3, 1)
    model = models.create("resnet18", num_classes=1000)
    shapes, entries = entries_for(model, (224, 224, 3))
    tensors = {key: types.SimpleNamespace(shape=shape) for key, shape in sd.items()}
    with pytest.raises(transfer.WeightMismatchError) as error:
        mapping.check(shapes, entries, tensors, source="resnet18.safetensors", ignore=torchvision.ignored)
    message = str(error.value)
    assert "1 mismatched" in message and "missing" not in message and "unexpected" not in message
    assert "layer3.1.conv2.weight: file (256, 256, 3, 1), model expects (256, 256, 3, 3)" in message


def test_flatten_reorder_matches_channels_first_flatten():
    """Flax's flatten of (H, W, C) times the converted weight = PyTorch's flatten of (C, H, W) times W.T."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)  # (B, H, W, C)
    weight = rng.normal(size=(5, 4 * 3 * 3)).astype(np.float32)  # (out, C*H*W), torchvision's layout
    converter = mapping.torch_flatten_linear(channels=4)
    ours = features.reshape(2, -1) @ converter.apply(weight, (36, 5))
    theirs = features.transpose(0, 3, 1, 2).reshape(2, -1) @ weight.T
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def save_safetensors(sd: dict, path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="writing test files needs safetensors")
    safetensors_numpy.save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, str(path))


NUMERIC = [  # registry name, options, layout, torch reference, input (H, W)
    ("resnet18", {"num_filters": 8}, lambda: tv.resnet(18, 10, width=8),
     lambda ref, sd, x: ref.resnet(sd, x, (2, 2, 2, 2), bottleneck=False), 32),
    ("resnet50", {"num_filters": 8}, lambda: tv.resnet(50, 10, width=8),
     lambda ref, sd, x: ref.resnet(sd, x, (3, 4, 6, 3), bottleneck=True), 32),
    # cnnlab's VGG has no adaptive pool (torchvision's is the identity at 224 px); at 64 px the
    # flatten sees 2x2x512 features, so fc1's input reordering matters.
    ("vgg11", {"batch_norm": True, "fc_features": 32}, lambda: tv.vgg("A", True, 10, fc=32, spatial=2),
     lambda ref, sd, x: ref.vgg(sd, x, tv.VGG_CFGS["A"], batch_norm=True), 64),
    ("alexnet_tv", {"fc_features": 32}, lambda: tv.alexnet(10, fc=32), lambda ref, sd, x: ref.alexnet(sd, x), 224),
    ("convnext_tiny", {"dims": (8, 16, 24, 32), "depths": (1, 2, 1, 1)},
     lambda: tv.convnext(10, dims=(8, 16, 24, 32), depths=(1, 2, 1, 1)),
     lambda ref, sd, x: ref.convnext(sd, x, (1, 2, 1, 1)), 64),
]  # fmt: skip


@pytest.mark.parametrize("name, options, layout, reference, size", NUMERIC, ids=[n[0] for n in NUMERIC])
def test_safetensors_logits_match_pytorch(name, options, layout, reference, size, tmp_path):
    torch = pytest.importorskip("torch", reason="the PyTorch reference forward pass needs torch")
    import torch_reference

    sd = tv.random_state_dict(layout())
    save_safetensors(sd, tmp_path / f"{name}.safetensors")
    variables = transfer.load_weights(tmp_path / f"{name}.safetensors", model=name, input_shape=(size, size, 3),
                                      **options)  # fmt: skip
    x = np.random.default_rng(1).normal(size=(2, size, size, 3)).astype(np.float32)
    model = models.create(name, num_classes=10, **options)  # 10: read from the file's classifier
    ours = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))
    with torch.no_grad():
        theirs = reference(torch_reference, sd, torch.as_tensor(x.transpose(0, 3, 1, 2))).numpy()
    assert ours.shape == theirs.shape == (2, 10)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_pth_loads_like_safetensors(tmp_path):
    torch = pytest.importorskip("torch", reason=".pth files are read only when torch is installed")
    sd = tv.random_state_dict(tv.squeezenet("1_1", num_classes=4))
    torch.save({k: torch.as_tensor(v) for k, v in sd.items()}, tmp_path / "squeezenet.pth")
    save_safetensors(sd, tmp_path / "squeezenet.safetensors")
    from_pth = transfer.load_weights(tmp_path / "squeezenet.pth", model="squeezenet1_1")
    from_safetensors = transfer.load_weights(tmp_path / "squeezenet.safetensors", model="squeezenet1_1")
    assert from_pth["params"]["classifier"]["kernel"].shape == (1, 1, 512, 4)  # 4 classes, read from the file
    for a, b in zip(jax.tree.leaves(from_pth), jax.tree.leaves(from_safetensors)):
        np.testing.assert_array_equal(a, b)


class Exploit:
    """A pickled object whose unpickling would run code: weights_only must refuse it."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('UNPICKLED').write_text('ran')",))


def test_pth_never_unpickles_arbitrary_objects(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch", reason=".pth files are read only when torch is installed")
    monkeypatch.chdir(tmp_path)
    torch.save({"fc.weight": torch.zeros(2, 2), "evil": Exploit()}, tmp_path / "evil.pth")
    with pytest.raises(transfer.WeightFileError, match=r"evil\.pth: cannot load it as a state dict with "
                                                       r"weights_only=True"):  # fmt: skip
        transfer.load_weights(tmp_path / "evil.pth", model="resnet18")
    assert not (tmp_path / "UNPICKLED").exists()


def test_truncated_files_are_named(tmp_path):
    sd = tv.random_state_dict(tv.squeezenet("1_1", num_classes=4))
    path = tmp_path / "squeezenet.safetensors"
    save_safetensors(sd, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(transfer.WeightFileError, match=r"squeezenet\.safetensors: truncated: tensor \S+ needs bytes"):
        transfer.load_weights(path, model="squeezenet1_1")
    path.write_bytes(data[:20])  # inside the JSON header
    with pytest.raises(transfer.WeightFileError, match=r"squeezenet\.safetensors: not a safetensors file, or "
                                                       "truncated in its header"):  # fmt: skip
        transfer.load_weights(path, model="squeezenet1_1")


def test_truncated_pth_is_named(tmp_path):
    torch = pytest.importorskip("torch", reason=".pth files are read only when torch is installed")
    path = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(1000, 512)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert zipfile.is_zipfile(path) is False  # the zip directory at the end is gone
    with pytest.raises(transfer.WeightFileError, match=r"resnet\.pth: cannot load it as a state dict"):
        transfer.load_weights(path, model="resnet18")


TORCHVISION_MODELS = [("resnet18", {}), ("vgg11", {"batch_norm": True}), ("alexnet_tv", {}),
                      ("squeezenet1_1", {}), ("convnext_tiny", {})]  # fmt: skip
TORCHVISION_NAMES = {"vgg11": "vgg11_bn", "alexnet_tv": "alexnet"}


@pytest.mark.slow
@pytest.mark.parametrize("name, options", TORCHVISION_MODELS)
def test_torchvision_models_round_trip(name, options, tmp_path):
    """With torchvision itself: its random-initialized model, saved, loaded, same logits."""
    torch = pytest.importorskip("torch", reason="needs torch")
    tv_models = pytest.importorskip("torchvision.models", reason="torchvision is not installed (not installable "
                                                                 "here); the synthetic state-dict tests cover the keys")  # fmt: skip
    net = getattr(tv_models, TORCHVISION_NAMES.get(name, name))(weights=None, num_classes=7).eval()
    for module in net.modules():  # non-trivial running statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), tmp_path / "net.pth")
    variables = transfer.load_weights(tmp_path / "net.pth", model=name, **options)
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)
    model = models.create(name, num_classes=7, **options)
    ours = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, x))
    with torch.no_grad():
        theirs = net(torch.as_tensor(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_wrong_files_are_named(tmp_path):
    (tmp_path / "notes.h5").write_text("not weights")
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 64)
    pytest.importorskip("h5py", reason="Keras files are read with h5py")
    with pytest.raises(transfer.WeightFileError, match=r"notes\.h5: cannot read it as a Keras HDF5 weight file"):
        transfer.load_weights(tmp_path / "notes.h5", model="vgg16")
    with pytest.raises(transfer.WeightFileError, match=r"weights\.bin: unknown weight format"):
        transfer.load_weights(tmp_path / "weights.bin", model="vgg16")
    with pytest.raises(transfer.WeightFileError, match=r"absent\.safetensors: no such file"):
        transfer.load_weights(tmp_path / "absent.safetensors", model="vgg16")
