"""`cnnlab-summary model=<name> [data=<name> | data.<key>=... | model.input_shape=[h,w,c]] [+depth=N]`.

Prints the model's Keras-style summary (Layer (type) | Output Shape | Param #,
totals, forward multiply-adds and FLOPs per image), then a table of each
convolution's and pooling layer's receptive field, cumulative stride (jump) and
start (`models/receptive_field.py`). The input is the one the architecture was
designed for, with its paper's class count (LeNet-5 32x32x1 and 10 classes,
ResNet 224x224x3 and 1,000), unless the command names a data set or an input
shape: then it is the input a run would feed it, `model.input_shape` or
(data.image_size, data.image_size, data.channels), with data.num_classes
outputs. `+depth=N` collapses modules below depth N into one row each. Nothing
is written: the summary composes the configs with Hydra's compose API, so no
run directory is made.

    cnnlab-summary model=typical_cnn                 # the lecture's table: 28x28x1, 27,562 parameters
    cnnlab-summary model=resnet18 model.cifar_stem=true data.image_size=32 data.channels=3 +depth=1
"""

from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from cnnlab import models
from cnnlab.cli import compose
from cnnlab.models import receptive_field


def summary_text(cfg: DictConfig | dict, *, designed_input: bool = False) -> str:
    """The rendered summary for a composed config (a DictConfig or the plain dict of one).

    `designed_input`: the architecture's own input and class count instead of the data config's.
    """
    cfg = OmegaConf.create(cfg)
    options = OmegaConf.to_container(cfg.model, resolve=True)
    name, input_shape = options.pop("name"), options.pop("input_shape", None)
    num_classes = cfg.data.num_classes
    if input_shape is None and designed_input:
        input_shape, num_classes = models.default_input_shape(name), models.default_num_classes(name)
    elif input_shape is None:
        input_shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
    model = models.create(name, num_classes=num_classes, **options)
    summary = models.summarize(model, tuple(input_shape), depth=cfg.get("depth"), name=name)
    fields = receptive_field.render(models.receptive_fields(model, tuple(input_shape)))
    return f"{summary.render()}\n\n{fields}"


def names_the_input(overrides: Sequence[str]) -> bool:
    """Whether the command line names a data set or an input shape."""
    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    return any(k == "data" or k.startswith("data.") or k == "model.input_shape" for k in keys)


def main(argv: Sequence[str] | None = None) -> None:
    composed = compose.from_command_line(argv, __doc__)
    if composed is not None:
        cfg, overrides = composed
        print(summary_text(cfg, designed_input=not names_the_input(overrides)))


if __name__ == "__main__":
    main()
