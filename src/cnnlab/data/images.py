"""Host-side image conversion: any decoded image to a fixed (size, size, C) uint8 array.

Every source stores (or serves) images of one shape, so that batches stack
and the jitted step compiles once. Resizing squashes to a square (the whole
picture stays in frame) with PIL's bilinear filter, which antialiases when
shrinking. Transparent pixels (RGBA, palette with transparency) are
composited onto white, the usual background of drawn or cut-out images.
"""

import numpy as np
from PIL import Image

MODES = {1: "L", 3: "RGB"}  # data.channels -> PIL mode


def check_channels(channels: int) -> None:
    if channels not in MODES:
        raise ValueError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


# 16-bit grey (PNG, TIFF: medical and scientific images); Pillow reads some as 32-bit "I".
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_array(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """A PIL image of any mode as a (size, size, channels) uint8 array."""
    if image.mode in SIXTEEN_BIT:  # PIL's own conversion clips every value above 255 to white
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(wide * (255 / 65535)), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert(MODES[channels])
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(size, size, channels)


def fit_array(array: np.ndarray, size: int, channels: int) -> np.ndarray:
    """A decoded (H, W) or (H, W, 1|3|4) uint8 image as (size, size, channels) uint8."""
    if array.ndim == 3 and array.shape[-1] == channels and array.shape[:2] == (size, size):
        return array  # already right: no copy, no rounding
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return to_array(Image.fromarray(array), size, channels)


def fit_grey_batch(images: np.ndarray, size: int) -> np.ndarray:
    """(N, h, w) grey images as (N, size, size, 1).

    A larger size pads with black around the centre, as LeCun et al. (1998)
    placed the 28x28 MNIST digits in LeNet-5's 32x32 field: pixels stay exact.
    A smaller size is resized.
    """
    n, h, w = images.shape
    if size >= h and size >= w:
        top, left = (size - h) // 2, (size - w) // 2
        fitted = np.pad(images, ((0, 0), (top, size - h - top), (left, size - w - left)))
    else:
        fitted = np.stack([to_array(Image.fromarray(image), size, 1)[..., 0] for image in images])
    return fitted[..., None]  # (N, size, size, 1)
