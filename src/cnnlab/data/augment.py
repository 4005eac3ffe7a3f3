"""Random augmentation on device, per example, inside the jitted train step (dm-pix).

`build(cfg)` (cfg: the `augment` config group) returns
`augment(key, images) -> images` for (B, H, W, C) float32 batches: the batch
key is split into one key per example and the ops run under `vmap`, so each
example draws its own flip, angle, shift, zoom, blur, noise and brightness.
The shape never changes, so the step compiles once. An op whose `enable` is
false is not applied at all, and with every op disabled `augment` returns its
input unchanged (bitwise). Each op's randomness comes from
`fold_in(example_key, op number)`, so enabling one op never changes the
draws of another.

Images arrive normalized (see data.normalize), so `brightness.delta` and
`noise.std` are in normalized units (standard deviations for zscore).
Rotation, translation and zoom are one affine resampling (bilinear, edges
extended), the same for every channel.

ImageNet style keeps fixed shapes this way: every source already stores (or
resizes on the host to) data.image_size; `random_resized_crop` crops a random
area/aspect-ratio box of that image and resizes it back to image_size, and
for evaluation `build_eval(cfg)` crops the centre `center_crop.fraction`
(0.875) and resizes it back likewise.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import dm_pix as pix
import jax
import jax.numpy as jnp

Augment = Callable[[jax.Array, jax.Array], jax.Array]  # (key, images (B, H, W, C)) -> images
EvalTransform = Callable[[jax.Array], jax.Array]  # images (B, H, W, C) -> images

# Each op's settings besides `enable`, with defaults; the order is the order of application.
OPS: dict[str, dict[str, Any]] = {
    "random_resized_crop": {"area": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)},
    "hflip": {"probability": 0.5},
    "vflip": {"probability": 0.5},
    "rotate": {"degrees": 15.0},  # uniform in [-degrees, degrees]
    "translate": {"pixels": 3.0},  # uniform in [-pixels, pixels], each axis
    "scale": {"min": 0.9, "max": 1.1},  # zoom factor; > 1 zooms in
    "blur": {"sigma": (0.1, 1.0)},  # gaussian sigma in pixels, uniform in the range
    "noise": {"std": 0.05},  # additive gaussian noise
    "brightness": {"delta": 0.1},  # additive shift, uniform in [-delta, delta]
    "center_crop": {"fraction": 0.875},  # evaluation only: see build_eval
}


def settings(cfg: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The enabled ops of `cfg`, each with its settings filled in from OPS."""
    cfg = cfg or {}
    unknown = set(cfg) - set(OPS)
    if unknown:
        raise ValueError(f"unknown augment op(s) {sorted(unknown)}; known: {', '.join(OPS)}")
    enabled = {}
    for name, defaults in OPS.items():
        op = dict(cfg.get(name) or {})
        if op.pop("enable", False):
            extra = set(op) - set(defaults)
            if extra:
                known = ", ".join(["enable", *defaults])
                raise ValueError(f"augment.{name}: unknown setting(s) {sorted(extra)}; known: {known}")
            enabled[name] = {**defaults, **op}
    return enabled


def build(cfg: Mapping[str, Any] | None) -> Augment:
    """`augment(key, images)` for training batches; the identity when no op is enabled."""
    ops = {name: s for name, s in settings(cfg).items() if name != "center_crop"}
    if not ops:
        return lambda key, images: images

    def augment_one(key: jax.Array, image: jax.Array) -> jax.Array:  # image: (H, W, C)
        op_key = lambda name: jax.random.fold_in(key, list(OPS).index(name))  # noqa: E731
        if "random_resized_crop" in ops:
            image = random_resized_crop(op_key("random_resized_crop"), image, **ops["random_resized_crop"])
        if "hflip" in ops:
            image = pix.random_flip_left_right(op_key("hflip"), image, probability=ops["hflip"]["probability"])
        if "vflip" in ops:
            image = pix.random_flip_up_down(op_key("vflip"), image, probability=ops["vflip"]["probability"])
        if {"rotate", "translate", "scale"} & set(ops):
            image = random_affine(op_key, image, ops)
        if "blur" in ops:
            image = random_blur(op_key("blur"), image, *ops["blur"]["sigma"])
        if "brightness" in ops:
            image = pix.random_brightness(op_key("brightness"), image, ops["brightness"]["delta"])
        if "noise" in ops:
            image = image + ops["noise"]["std"] * jax.random.normal(op_key("noise"), image.shape, image.dtype)
        return image

    def augment(key: jax.Array, images: jax.Array) -> jax.Array:
        keys = jax.random.split(key, images.shape[0])  # one key per example
        return jax.vmap(augment_one)(keys, images)  # (B, H, W, C)

    return augment


def build_eval(cfg: Mapping[str, Any] | None) -> EvalTransform:
    """`transform(images)` for evaluation batches: the centre crop where enabled, else the identity."""
    crop = settings(cfg).get("center_crop")
    if crop is None:
        return lambda images: images
    return jax.vmap(lambda image: center_crop(image, crop["fraction"]))


def random_affine(op_key: Callable[[str], jax.Array], image: jax.Array, ops: Mapping[str, Mapping]) -> jax.Array:
    """Rotation, zoom and translation about the centre, as one bilinear resampling."""
    angle, zoom, shift = jnp.float32(0), jnp.float32(1), jnp.zeros(2)
    if "rotate" in ops:
        limit = math.radians(ops["rotate"]["degrees"])
        angle = jax.random.uniform(op_key("rotate"), (), minval=-limit, maxval=limit)
    if "scale" in ops:
        zoom = jax.random.uniform(op_key("scale"), (), minval=ops["scale"]["min"], maxval=ops["scale"]["max"])
    if "translate" in ops:
        pixels = ops["translate"]["pixels"]
        shift = jax.random.uniform(op_key("translate"), (2,), minval=-pixels, maxval=pixels)
    cos, sin = jnp.cos(angle) / zoom, jnp.sin(angle) / zoom
    # Output pixel o samples input pixel M (o - c) + c - shift: M = R(angle) / zoom maps output to input.
    linear = jnp.array([[cos, sin], [-sin, cos]])  # (2, 2), on (row, column)
    centre = (jnp.array(image.shape[:2], jnp.float32) - 1) / 2
    return _resample(image, linear, centre - linear @ centre - shift)


def random_resized_crop(key: jax.Array, image: jax.Array, area: tuple, ratio: tuple) -> jax.Array:
    """A box of random area fraction and aspect ratio (w / h), resized back to the image's size."""
    h, w = image.shape[:2]
    area_key, ratio_key, y_key, x_key = jax.random.split(key, 4)
    fraction = jax.random.uniform(area_key, (), minval=area[0], maxval=area[1])
    aspect = jnp.exp(jax.random.uniform(ratio_key, (), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
    box_h = jnp.clip(h * jnp.sqrt(fraction / aspect), 1.0, h)  # aspect = box_w / box_h in image proportions
    box_w = jnp.clip(w * jnp.sqrt(fraction * aspect), 1.0, w)
    top = jax.random.uniform(y_key, ()) * (h - box_h)
    left = jax.random.uniform(x_key, ()) * (w - box_w)
    return _crop_resized(image, top, left, box_h, box_w)


def center_crop(image: jax.Array, fraction: float) -> jax.Array:
    """The centre `fraction` of each side, resized back to the image's size."""
    h, w = image.shape[:2]
    return _crop_resized(image, (1 - fraction) * h / 2, (1 - fraction) * w / 2, fraction * h, fraction * w)


def random_blur(key: jax.Array, image: jax.Array, sigma_min: float, sigma_max: float) -> jax.Array:
    """Gaussian blur with a sigma drawn per example; the kernel covers 3 sigma of the largest.

    The edges are extended before blurring (then VALID convolution), so the
    border keeps its brightness instead of fading towards zero padding.
    """
    sigma = jax.random.uniform(key, (), minval=sigma_min, maxval=sigma_max)
    radius = math.ceil(3 * sigma_max)
    padded = jnp.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="edge")  # (H + 2r, W + 2r, C)
    return pix.gaussian_blur(padded, sigma, kernel_size=2 * radius + 1, padding="VALID")  # (H, W, C)


def _crop_resized(image, top, left, box_h, box_w) -> jax.Array:
    """The box (top, left, box_h, box_w) stretched over the whole (H, W) grid, pixel centres aligned."""
    h, w = image.shape[:2]
    step = jnp.array([box_h / h, box_w / w])
    linear = jnp.diag(step)
    offset = jnp.array([top, left]) + 0.5 * step - 0.5
    return _resample(image, linear, offset)


def _resample(image: jax.Array, linear: jax.Array, offset: jax.Array) -> jax.Array:
    """Output pixel (r, c) takes input position linear @ (r, c) + offset, bilinear, same for every channel."""
    matrix = jnp.eye(3).at[:2, :2].set(linear)  # (3, 3): the channel axis maps to itself
    return pix.affine_transform(image, matrix, offset=jnp.append(offset, 0.0), order=1, mode="nearest")
