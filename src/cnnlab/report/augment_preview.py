"""augment_preview.png: a grid of original images (top row) and augmented draws below."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot(originals: np.ndarray, augmented: Sequence[np.ndarray], path: Path, *, titles: Sequence[str] = (),
         heading: str = "") -> None:  # fmt: skip
    """Draw `originals` (N, H, W, C) and each of `augmented` (R arrays like it) as rows of a grid.

    Images are pixel values (0..255, any float or integer dtype) and are clipped
    for display; one channel is drawn in grey.
    """
    rows, columns = 1 + len(augmented), len(originals)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.4 * rows + 0.4), squeeze=False)
    for row, images in enumerate([originals, *augmented]):
        for column, image in enumerate(images):
            ax = axes[row, column]
            shown = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)  # (H, W, C)
            grey = shown.shape[-1] == 1
            ax.imshow(shown[..., 0] if grey else shown, cmap="gray" if grey else None, vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0 and column < len(titles):
                ax.set_title(titles[column], fontsize=8)
        axes[row, 0].set_ylabel("original" if row == 0 else f"draw {row}", fontsize=8)
    if heading:
        fig.suptitle(heading, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
