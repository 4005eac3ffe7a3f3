"""The model's predictions over a split of its own data, as the run's evaluation saw it."""

import dataclasses

import jax
import numpy as np

from cnnlab import data
from cnnlab.analysis.run import TrainedRun

SPLITS = ("test", "val")


@dataclasses.dataclass(frozen=True)
class Predictions:
    """One row per example of the split, in the split's order."""

    labels: np.ndarray  # (N,) int64 true classes
    probabilities: np.ndarray  # (N, classes) float32 softmax of the logits

    @property
    def predicted(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)  # (N,)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)  # (N,) probability of the predicted class

    @property
    def top1(self) -> float:
        return float(np.mean(self.predicted == self.labels))


def predict(run: TrainedRun, split: str) -> Predictions:
    """Softmax probabilities of every example of `split`, in padded batches of the run's eval size."""
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    subset = run.dataset.splits[split]
    batches = data.eval_batches(subset, batch_size=run.config["trainer"]["eval_batch_size"],
                                normalization=run.normalization)  # fmt: skip
    probabilities = softmax(run)
    labels, rows = [], []
    for batch in batches:
        mask = batch["mask"]  # (B,): the last batch is padded
        rows.append(np.asarray(probabilities(batch["image"]))[mask])
        labels.append(batch["label"][mask])
    return Predictions(np.concatenate(labels).astype(np.int64), np.concatenate(rows))


def probabilities_of(run: TrainedRun, images: np.ndarray) -> np.ndarray:
    """(N, classes) softmax probabilities of (N, H, W, C) uint8 images, normalized as in training."""
    batch_size = run.config["trainer"]["eval_batch_size"]
    fun = softmax(run)
    rows = []
    for start in range(0, len(images), batch_size):
        chunk = run.normalize(images[start : start + batch_size])
        padded = np.zeros((batch_size, *chunk.shape[1:]), np.float32)  # one shape: one compile
        padded[: len(chunk)] = chunk
        rows.append(np.asarray(fun(padded))[: len(chunk)])
    return np.concatenate(rows) if rows else np.zeros((0, run.dataset.num_classes), np.float32)


def softmax(run: TrainedRun):
    """Compiled: normalized images (B, H, W, C) -> (B, classes) float32 probabilities."""
    # float32 before the softmax: a bf16 run's logits would round the probabilities to 3 digits
    return run.jit(lambda images: jax.nn.softmax(run.apply(images).astype(np.float32)))
