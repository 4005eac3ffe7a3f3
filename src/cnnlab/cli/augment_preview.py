"""`cnnlab-augment-preview data=... augment=...`: a PNG grid of original and augmented training images.

The first row shows `preview.samples` training images taken across the classes
(one of each class in turn), each further row one draw of the `augment`
config on them (exactly what the train step would see, before the model),
shown back in pixel values:
  cnnlab-augment-preview data=fashion_mnist augment=heavy
  cnnlab-augment-preview data=image_folder data.root=photos augment=light +preview.rows=6 +preview.out=aug.png
Writes `augment_preview.png` in the current directory unless `preview.out` is
given, and nothing else (no run directory).
"""

from collections.abc import Sequence
from pathlib import Path

from cnnlab.cli import compose

DEFAULTS = {"samples": 8, "rows": 4, "out": "augment_preview.png"}
SCANNED = 2000  # the training records whose labels the sample is chosen from


def across_classes(labels: Sequence[int], count: int) -> list[int]:
    """Indices of `count` records, one of each class in turn (in order of first appearance)."""
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    queues, picked = list(by_class.values()), []
    while len(picked) < min(count, len(labels)):
        for queue in queues:
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return picked


def main(argv: Sequence[str] | None = None) -> None:
    composed = compose.from_command_line(argv, __doc__)
    if composed is None:
        return
    import jax
    import numpy as np
    from omegaconf import OmegaConf

    from cnnlab import data
    from cnnlab.data import augment
    from cnnlab.report import augment_preview

    config = OmegaConf.to_container(composed[0], resolve=True)
    preview = {**DEFAULTS, **(config.get("preview") or {})}
    dataset = data.load(config["data"])
    train = dataset.splits["train"]
    labels = [train[i]["label"] for i in range(min(SCANNED, len(train)))]
    records = [train[i] for i in across_classes(labels, preview["samples"])]
    normalization = dataset.normalization
    images = np.stack([normalization(r["image"]) for r in records])  # (N, H, W, C), as batched
    transform = jax.jit(augment.build(config.get("augment")))
    key = jax.random.key(config.get("seed", 0))
    draws = [normalization.invert(np.asarray(transform(jax.random.fold_in(key, row), images)))
             for row in range(preview["rows"])]  # fmt: skip
    out = Path(preview["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    enabled = ", ".join(op for op in augment.settings(config.get("augment")) if op != "center_crop") or "none"
    augment_preview.plot(
        normalization.invert(images), draws, out,
        titles=[dataset.class_names[r["label"]] for r in records],
        heading=f"{config['data']['name']}: augment {enabled}",
    )  # fmt: skip
    print(out)


if __name__ == "__main__":
    main()
