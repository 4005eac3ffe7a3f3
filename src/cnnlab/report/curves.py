"""curves.png: loss and top-1 against epoch, one line per split."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def plot(records: list[dict], path: Path) -> None:
    """Draw train and val loss and top-1 from metrics.jsonl records."""
    fig, (ax_loss, ax_top1) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        rows = [r for r in records if r["split"] == split]
        epochs = [r["epoch"] for r in rows]
        ax_loss.plot(epochs, [r["loss"] for r in rows], marker="o", label=split)
        ax_top1.plot(epochs, [r["top1"] for r in rows], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_top1.set(xlabel="epoch", ylabel="top-1", title="top-1 accuracy")
    for ax in (ax_loss, ax_top1):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
