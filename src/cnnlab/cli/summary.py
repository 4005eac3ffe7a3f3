"""`cnnlab-summary model=<name> [data=<name> | model.input_shape=[h,w,c]] [+depth=N]`.

Prints the model's Keras-style summary (Layer (type) | Output Shape | Param #,
totals, forward FLOPs per image) for the input the run would feed it:
`model.input_shape`, or, when that is null, (data.image_size, data.image_size,
data.channels); the classifier has data.num_classes outputs. `+depth=N`
collapses modules below depth N into one row each.

    cnnlab-summary model=typical_cnn model.input_shape=[28,28,1]
    cnnlab-summary model=resnet18 model.cifar_stem=true +depth=1
"""

import hydra
from omegaconf import DictConfig, OmegaConf

from cnnlab import models


def summary_text(cfg: DictConfig | dict) -> str:
    """The rendered summary for a composed config (a DictConfig or the plain dict of one)."""
    cfg = OmegaConf.create(cfg)
    options = OmegaConf.to_container(cfg.model, resolve=True)
    name, input_shape = options.pop("name"), options.pop("input_shape", None)
    if input_shape is None:
        input_shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
    model = models.create(name, num_classes=cfg.data.num_classes, **options)
    summary = models.summarize(model, tuple(input_shape), depth=cfg.get("depth"), name=name)
    return summary.render()


@hydra.main(version_base=None, config_path="pkg://cnnlab.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print(summary_text(cfg))


if __name__ == "__main__":
    main()
