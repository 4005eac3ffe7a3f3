"""Keras applications round trip: random weights saved by Keras 3 (JAX backend) in both HDF5
layouts (Keras 3's .weights.h5, and the legacy .h5 as a whole model and as the published weight
files hold it), loaded into the cnnlab model, same logits on the same input. Nothing is downloaded."""

import os
import shutil

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported: no TensorFlow

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cnnlab import models, transfer  # noqa: E402

keras = pytest.importorskip("keras", reason="the Keras round trip needs keras (a test dependency)")
h5py = pytest.importorskip("h5py", reason="Keras weight files are read with h5py")

slow = pytest.mark.slow
# cnnlab name, keras.applications name, the smallest input Keras accepts (or near it)
APPLICATIONS = [
    ("vgg16", "VGG16", (32, 32, 3)),
    ("vgg19", "VGG19", (32, 32, 3)),
    ("mobilenet_v1", "MobileNet", (32, 32, 3)),
    ("resnet50_keras", "ResNet50", (32, 32, 3)),
    ("xception", "Xception", (71, 71, 3)),
    pytest.param("inception_v3", "InceptionV3", (75, 75, 3), marks=slow),
]
CLASSES = 7


@pytest.fixture(scope="module", autouse=True)
def numpy_initializers():
    """Draw Keras's initial weights with NumPy while the tests build models.

    The JAX backend compiles one random initializer per weight shape (about
    0.7 s each on a 2-core CPU: a minute for InceptionV3); the values do not
    matter, since `randomize` replaces them anyway.
    """
    from keras.src.backend.jax import random as keras_random

    rng = np.random.default_rng(0)
    patched = {
        "uniform": lambda shape, minval=0.0, maxval=1.0, dtype=None, seed=None: rng.uniform(minval, maxval, shape),
        "normal": lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: rng.normal(mean, stddev, shape),
        "truncated_normal": lambda shape, mean=0.0, stddev=1.0, dtype=None, seed=None: np.clip(
            rng.normal(mean, stddev, shape), mean - 2 * stddev, mean + 2 * stddev),
    }  # fmt: skip
    saved = {name: getattr(keras_random, name) for name in patched}
    for name, fn in patched.items():
        setattr(keras_random, name, lambda *a, _fn=fn, dtype=None, **k: _fn(*a, **k).astype(dtype or "float32"))
    yield
    for name, fn in saved.items():
        setattr(keras_random, name, fn)


def randomize(model, seed: int = 0) -> None:
    """Non-trivial biases and BatchNorm statistics, so that every tensor's placement shows in the logits."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        name, shape = variable.path.split("/")[-1], tuple(variable.shape)
        if name in ("bias", "beta", "moving_mean"):
            variable.assign(rng.normal(0, 0.1, shape).astype("float32"))
        elif name in ("gamma", "moving_variance"):
            variable.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))


def keras_application(name: str, input_shape, directory):
    """(both weight files, the input, Keras's logits) for a random keras.applications model."""
    net = getattr(keras.applications, name)(weights=None, input_shape=input_shape, classes=CLASSES,
                                            classifier_activation=None)  # fmt: skip
    randomize(net)
    x = np.random.default_rng(1).normal(size=(2, *input_shape)).astype("float32")
    logits = np.asarray(net.predict(x, verbose=0))
    net.save_weights(directory / "keras3.weights.h5")  # Keras 3: layers/<object>/vars/<i>
    net.save(directory / "legacy_model.h5")  # legacy HDF5 model: model_weights/<layer>/<layer>/<weight>
    with h5py.File(directory / "legacy_model.h5") as model, h5py.File(directory / "legacy.h5", "w") as weights:
        # Keras 2's save_weights("x.h5"), the published ImageNet files' layout: the same groups at the root.
        for name, value in model["model_weights"].attrs.items():
            weights.attrs[name] = value
        for name in model["model_weights"]:
            model.copy(model["model_weights"][name], weights, name)
    files = ("keras3.weights.h5", "legacy_model.h5", "legacy.h5")
    return tuple(directory / f for f in files), x, logits


@pytest.mark.parametrize("name, application, input_shape", APPLICATIONS)
def test_keras_weights_give_keras_logits(name, application, input_shape, tmp_path):
    files, x, expected = keras_application(application, input_shape, tmp_path)
    model = models.create(name, num_classes=CLASSES)
    forward = jax.jit(lambda variables, x: model.apply(variables, x, train=False))
    for path in files:
        variables = transfer.load_weights(path, model=name, input_shape=input_shape)
        ours = np.asarray(forward(variables, x))
        assert ours.shape == expected.shape == (2, CLASSES)
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max(), err_msg=str(path))


@pytest.fixture(scope="module")
def mobilenet_files(tmp_path_factory):
    return keras_application("MobileNet", (32, 32, 3), tmp_path_factory.mktemp("mobilenet"))[0]


def test_a_wrong_shape_in_a_keras_file_is_named(mobilenet_files, tmp_path):
    for original in mobilenet_files:
        path = tmp_path / original.name
        shutil.copy(original, path)
        with h5py.File(path, "r+") as f:
            group = f["layers"] if "layers" in f else f["model_weights"] if "model_weights" in f else f
            paths = []
            group.visititems(lambda key, node: paths.append(key) if isinstance(node, h5py.Dataset) else None)
            kernel = next(p for p in paths if ("conv_pw_3/" in p and p.endswith("kernel")) or
                          (p.endswith("vars/0") and group[p].shape == (1, 1, 128, 128)))  # fmt: skip
            del group[kernel]
            group[kernel] = np.zeros((1, 1, 128, 64), np.float32)
        with pytest.raises(transfer.WeightMismatchError) as error:
            transfer.load_weights(path, model="mobilenet_v1", input_shape=(32, 32, 3))
        message = str(error.value)
        assert str(path) in message and "1 mismatched" in message
        assert "file (1, 1, 128, 64), model expects (1, 1, 128, 128)" in message
        assert "conv_pw_3[0]: file" in message and "for params/conv_pw_3/kernel" in message


def test_a_truncated_keras_file_is_named(mobilenet_files, tmp_path):
    for original in mobilenet_files:
        path = tmp_path / original.name
        path.write_bytes(original.read_bytes()[:50_000])
        with pytest.raises(transfer.WeightFileError, match=f"{path}: cannot read it as a Keras HDF5 weight file"):
            transfer.load_weights(path, model="mobilenet_v1", input_shape=(32, 32, 3))


def test_a_file_of_another_architecture_lists_what_is_missing(mobilenet_files):
    with pytest.raises(transfer.WeightMismatchError) as error:
        transfer.load_weights(mobilenet_files[0], model="vgg16", input_shape=(32, 32, 3))
    message = str(error.value)
    assert "32 missing:" in message and "block1_conv1[0] (3, 3, 3, 64)" in message  # VGG16's 16 layers
    assert "137 unexpected:" in message  # MobileNet's tensors
