"""The analysis figures, each a PNG: confusion matrix, errors, filters, feature maps, saliency."""

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cnnlab.analysis.activations import ConvCall  # noqa: E402

MAX_FILTERS = 64
MAX_CHANNELS = 8  # feature maps shown per stage


def confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Counts with true classes as rows, each cell shaded by its share of the row (its recall)."""
    n = len(class_names)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    shaded = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:  # beyond that the numbers overlap
        for (t, p), count in np.ndenumerate(matrix):
            ax.text(p, t, str(count), ha="center", va="center", fontsize=8,
                    color="white" if share[t, p] > 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title="confusion matrix")
    fig.colorbar(shaded, ax=ax, fraction=0.046, label="share of the true class")
    _save(fig, path)


def image_grid(images: np.ndarray, titles: Sequence[str], path: Path, columns: int = 8) -> None:
    """(N, H, W, C) uint8 pixels in a grid, each with its title."""
    rows = max(1, math.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        _show(ax, image)
        ax.set_title(title, fontsize=7)
    _save(fig, path)


def filters(kernel: np.ndarray, path: Path, title: str) -> None:
    """The first convolution's kernels (kh, kw, in, out), one tile per output channel: RGB for a
    3-channel input, else the mean over input channels; each tile scaled to its own range."""
    kernel = kernel[..., :MAX_FILTERS]
    tiles = kernel if kernel.shape[2] == 3 else kernel.mean(axis=2, keepdims=True)  # (kh, kw, 1|3, out)
    columns = min(8, tiles.shape[-1])
    rows = math.ceil(tiles.shape[-1] / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[: tiles.shape[-1]]):
        tile = tiles[..., i]
        low, high = tile.min(), tile.max()
        ax.imshow(np.squeeze((tile - low) / max(high - low, 1e-12)), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")  # fmt: skip
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def feature_maps(image: np.ndarray, stages: Sequence[ConvCall], path: Path) -> None:
    """One image (H, W, C uint8) and, per stage, the first channels of its last convolution's output."""
    columns = MAX_CHANNELS + 1
    fig, axes = plt.subplots(len(stages), columns, figsize=(1.3 * columns, 1.4 * len(stages)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, stage in zip(axes, stages):
        _show(row[0], image)
        h, w, c = stage.output.shape
        row[0].set_title(f"{stage.path}\n{h}x{w}x{c}", fontsize=6, loc="left")
        for ax, channel in zip(row[1:], np.moveaxis(stage.output, -1, 0)):
            ax.imshow(channel, cmap="viridis", interpolation="nearest")
    _save(fig, path)


def saliency(images: np.ndarray, maps: np.ndarray, titles: Sequence[str], path: Path) -> None:
    """Each image (uint8) above its saliency map (N, H, W), the map overlaid on the image in grey."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        _show(axes[0, i], images[i])
        axes[0, i].set_title(titles[i], fontsize=7)
        axes[1, i].imshow(images[i].mean(axis=-1), cmap="gray")
        axes[1, i].imshow(maps[i], cmap="inferno", alpha=0.7)
    _save(fig, path)


def _show(ax, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
