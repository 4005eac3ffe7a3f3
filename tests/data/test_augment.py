"""On-device augmentation: deterministic per key, shape- and label-preserving, each op switchable."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from omegaconf import OmegaConf

from cnnlab.data import augment
from data_testing import REPO

KEY = jax.random.key(0)
IMAGES = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))  # (B, H, W, C), normalized-like


def preset(name: str) -> dict:
    """conf/augment/<name>.yaml over none.yaml, as Hydra's defaults list composes them."""
    layers = [OmegaConf.load(REPO / "conf" / "augment" / f"{n}.yaml") for n in dict.fromkeys(["none", name])]
    merged = OmegaConf.merge(*[{k: v for k, v in layer.items() if k != "defaults"} for layer in layers])
    return OmegaConf.to_container(merged)


@functools.cache
def jitted_preset(name: str):
    return jax.jit(augment.build(preset(name)))  # compiled once per shape for the whole module


def only(op: str, **settings) -> dict:
    cfg = preset("none")
    cfg[op].update(enable=True, **settings)
    return cfg


def test_augmentation_is_deterministic_for_a_key():
    heavy = jitted_preset("heavy")
    first, again, other = heavy(KEY, IMAGES), heavy(KEY, IMAGES), heavy(jax.random.key(7), IMAGES)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("name", ["heavy", "imagenet"])
def test_augmentation_keeps_shapes_and_each_image_with_its_label(name):
    # Image i is the constant i: geometric ops and blur keep it, brightness and noise move it
    # by far less than 0.5, so image i must still read as i, i.e. stay beside label i.
    levels = jnp.broadcast_to(jnp.arange(8.0)[:, None, None, None], IMAGES.shape)  # (B, H, W, C)
    out = jitted_preset(name)(KEY, levels)
    assert out.shape == levels.shape and out.dtype == levels.dtype
    np.testing.assert_array_equal(jnp.round(out.mean(axis=(1, 2, 3))), jnp.arange(8.0))


@pytest.mark.parametrize("op", [op for op in augment.OPS if op != "center_crop"])
def test_each_op_changes_images_when_enabled(op):
    out = jax.jit(augment.build(only(op)))(KEY, IMAGES)
    assert out.shape == IMAGES.shape and bool(jnp.isfinite(out).all())
    changed = np.asarray(jnp.any(out != IMAGES, axis=(1, 2, 3)))  # (B,)
    assert changed.any(), f"{op} left every image unchanged"


def test_disabled_ops_leave_images_bitwise_unchanged():
    none = preset("none")
    assert set(none) == set(augment.OPS) and not any(op["enable"] for op in none.values())
    assert np.array_equal(augment.build(none)(KEY, IMAGES), IMAGES)
    assert np.array_equal(augment.build(None)(KEY, IMAGES), IMAGES)
    assert np.array_equal(augment.build_eval(none)(IMAGES), IMAGES)
    # Centre crop is an evaluation transform: enabling it leaves training batches alone.
    assert np.array_equal(augment.build(only("center_crop"))(KEY, IMAGES), IMAGES)


def test_flips_are_exact():
    h = augment.build(only("hflip", probability=1.0))
    v = augment.build(only("vflip", probability=1.0))
    never = augment.build(only("hflip", probability=0.0))
    assert np.array_equal(h(KEY, IMAGES), IMAGES[:, :, ::-1])
    assert np.array_equal(v(KEY, IMAGES), IMAGES[:, ::-1])
    assert np.array_equal(never(KEY, IMAGES), IMAGES)


def test_center_crop_for_evaluation_resizes_the_centre_back():
    ramp = jnp.broadcast_to(jnp.arange(16.0)[None, None, :, None], (2, 16, 16, 3))  # value = column
    out = jax.jit(augment.build_eval(preset("imagenet")))(ramp)
    centre = 7.5  # (W - 1) / 2
    expected = centre + 0.875 * (jnp.arange(16.0) - centre)  # bilinear reproduces a linear ramp exactly
    assert out.shape == ramp.shape
    np.testing.assert_allclose(out[0, 5, :, 0], expected, atol=1e-5)


def test_unknown_op_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown augment op.*'hflp'.*hflip"):
        augment.build({"hflp": {"enable": True}})
