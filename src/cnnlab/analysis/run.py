"""A trained run read back from its directory: its config, data, model and weights.

    run = load("runs/2026-01-01_12-00-00")            # the tested weights (see `tested_checkpoint`)
    logits = run.apply(run.normalize(images))          # images: (B, H, W, C) uint8 as stored

Everything comes from the run itself: the config Hydra saved (`.hydra/config.yaml`),
the data split it trained on (`cnnlab.train.setup.load_data`: same split seed, same
classes), the model it built (`setup.create_model`), and the weights and
normalization statistics of one of its orbax checkpoints (`transfer.checkpoints.read`,
the reader `transfer.from_run` uses).
"""

import dataclasses
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from omegaconf import OmegaConf

from cnnlab import backend, data
from cnnlab.transfer import checkpoints, heads
from cnnlab.train import setup

CHECKPOINTS = ("best", "latest")
# create_model asks the parallel strategy only for pmap's device axis (BatchNorm's sync): one device has none.
SINGLE_DEVICE = types.SimpleNamespace(axis_name=None)


class RunDirError(ValueError):
    """A directory that is not a finished run with a checkpoint: the message names it and what is expected."""


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    directory: Path
    config: dict  # the run's resolved config
    dataset: data.Dataset  # its splits, class names and image shape
    model: nn.Module
    variables: dict  # {"params": ..., "batch_stats": ...}
    normalization: data.Normalization  # what the run normalized its inputs with
    checkpoint: str  # "<run dir>/checkpoints/<step>", for the report
    which: str  # "best" or "latest"
    eval_transform: Callable  # the run's evaluation transform (ImageNet's centre crop), or the identity

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.dataset.class_names or tuple(str(i) for i in range(self.dataset.num_classes))

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, C) uint8 pixels as the model saw them in evaluation (before the eval transform)."""
        return self.normalization(images)

    def apply(self, images: jax.Array, **kwargs: Any) -> jax.Array:
        """Logits (B, classes) of normalized images, in eval mode; `kwargs` go to `model.apply`."""
        return self.model.apply(self.variables, self.eval_transform(images), train=False, **kwargs)

    def jit(self, fun: Callable) -> Callable:
        """`fun` compiled with the backend policy the run trained with."""
        with backend.use(self.config.get("backend", "auto")):
            return backend.jit(fun)


def load(directory: str | Path, which: str | None = None) -> TrainedRun:
    """The run in `directory` with the weights of its `which` checkpoint (best, latest, or None:
    `tested_checkpoint`). Raises RunDirError for a directory that is not such a run."""
    directory = Path(directory).expanduser()
    config = read_config(directory)
    if (config.get("sweep") or {}).get("name") == "vmap":  # its checkpoints stack K variants' weights
        raise RunDirError(f"{directory} is a vmap sweep (sweep=vmap), whose checkpoints hold every variant's "
                          "weights at once; expected the directory of a single run")  # fmt: skip
    which = which or tested_checkpoint(config)
    if which not in CHECKPOINTS:
        raise RunDirError(f"--checkpoint must be one of {', '.join(CHECKPOINTS)}, got {which!r}")
    if not any(p.name.isdigit() for p in (directory / "checkpoints").glob("*")):
        raise RunDirError(f"{directory}: no checkpoint in {directory / 'checkpoints'} (expected the orbax "
                          "checkpoints that cnnlab-train writes at the end of every epoch)")  # fmt: skip
    dataset = setup.load_data(config)
    model, input_shape = setup.create_model(config, dataset, SINGLE_DEVICE)
    hidden = tuple(((config.get("transfer") or {}).get("head") or {}).get("hidden") or ())
    if hidden:  # a transfer run trained the model with its new head's hidden layers (transfer/plan.py)
        model = heads.WithHidden(model, hidden)
    saved = checkpoints.read(directory, model=model, input_shape=input_shape, which=which)
    normalization = data.Normalization.from_dict(saved.normalization) if saved.normalization else dataset.normalization
    return TrainedRun(directory, config, dataset, model, saved.variables, normalization, saved.source, which,
                      data.augment.build_eval(config.get("augment")))  # fmt: skip


def read_config(directory: Path) -> dict:
    """The resolved config Hydra saved for the run in `directory`."""
    path = directory / ".hydra" / "config.yaml"
    if not directory.is_dir():
        raise RunDirError(f"{directory} is not a directory (expected a run directory that cnnlab-train wrote)")
    if not path.is_file():
        raise RunDirError(f"{directory} is not a run directory: no {path} (expected the directory of a "
                          "cnnlab-train run, e.g. runs/<date>_<time>)")  # fmt: skip
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def tested_checkpoint(config: dict) -> str:
    """The checkpoint whose weights summary.json's test figures come from: the best epoch's
    with early stopping on (the run restored them before testing), else the last epoch's."""
    patience = ((config.get("trainer") or {}).get("early_stopping") or {}).get("patience")
    return "best" if patience else "latest"
