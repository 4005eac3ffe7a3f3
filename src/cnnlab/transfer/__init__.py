"""Transfer learning: pretrained weights, a new head, freezing, fine-tuning, a linear probe.

The lecture's steps: obtain a pretrained model (a cnnlab run, Keras or
torchvision weights), create a base, freeze layers, add new trainable layers,
train them, fine-tune.

    from cnnlab import transfer
    variables = transfer.load_weights("resnet18.safetensors", model="resnet18")

The training setup uses `prepare(cfg["transfer"], ...)` (plan.py): a plan that
transforms the model, the optimizer and the initial state of a run. The target
data's classes and images per class are data keys (`data.classes`,
`data.train_per_class`, applied by `data.load`). Nothing here imports Hydra or
cnnlab.train.
"""

from cnnlab.transfer.load import load_weights
from cnnlab.transfer.mapping import WeightFileError, WeightMismatchError
from cnnlab.transfer.plan import STRATEGIES, Phase, Plan, prepare

__all__ = ["STRATEGIES", "Phase", "Plan", "WeightFileError", "WeightMismatchError", "load_weights", "prepare"]
