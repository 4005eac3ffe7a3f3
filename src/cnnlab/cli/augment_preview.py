"""`cnnlab-augment-preview data=... augment=...`: a PNG grid of original and augmented training images.

The first row shows the first `preview.samples` training images, each further
row one draw of the `augment` config on them (exactly what the train step
would see, before the model), shown back in pixel values:
  cnnlab-augment-preview data=fashion_mnist augment=heavy
  cnnlab-augment-preview data=image_folder data.root=photos augment=light +preview.rows=6 +preview.out=aug.png
Writes `<hydra run dir>/augment_preview.png` unless `preview.out` is given.
"""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

DEFAULTS = {"samples": 8, "rows": 4, "out": None}


@hydra.main(version_base=None, config_path="pkg://cnnlab.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    # Imported after Hydra has parsed the command line: --help stays fast.
    import jax
    import numpy as np

    from cnnlab import data
    from cnnlab.data import augment
    from cnnlab.report import augment_preview

    config = OmegaConf.to_container(cfg, resolve=True)
    preview = {**DEFAULTS, **(config.get("preview") or {})}
    dataset = data.load(config["data"])
    train = dataset.splits["train"]
    records = [train[i] for i in range(min(preview["samples"], len(train)))]
    normalization = dataset.normalization
    images = np.stack([normalization(r["image"]) for r in records])  # (N, H, W, C), as batched
    transform = jax.jit(augment.build(config.get("augment")))
    key = jax.random.key(config.get("seed", 0))
    draws = [normalization.invert(np.asarray(transform(jax.random.fold_in(key, row), images)))
             for row in range(preview["rows"])]  # fmt: skip
    out = Path(preview["out"] or Path(HydraConfig.get().runtime.output_dir) / "augment_preview.png")
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
