"""Transfer learning: pretrained weights, a new head, freezing, fine-tuning, a linear probe.

The lecture's steps: obtain a pretrained model (a cnnlab run, Keras or
torchvision weights), create a base, freeze layers, add new trainable layers,
train them, fine-tune.

    from cnnlab import transfer
    variables = transfer.load_weights("resnet18.safetensors", model="resnet18")

The training loop uses `prepare(cfg["transfer"], ...)` (plan.py) and
`restrict` (target_data.py); nothing here imports Hydra or cnnlab.train.
"""

from cnnlab.transfer.load import load_weights
from cnnlab.transfer.mapping import WeightFileError, WeightMismatchError
from cnnlab.transfer.plan import STRATEGIES, Phase, Plan, prepare
from cnnlab.transfer.target_data import restrict

__all__ = ["STRATEGIES", "Phase", "Plan", "WeightFileError", "WeightMismatchError", "load_weights", "prepare", "restrict"]
