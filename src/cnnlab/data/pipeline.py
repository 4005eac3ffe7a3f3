"""grain pipelines: shuffled whole batches for training, padded batches for evaluation.

A batch is a dict of numpy arrays: `image` (B, H, W, C) float32, `label` (B,)
int32 and, for evaluation, `mask` (B,) bool marking the real examples.
"""

import functools

import grain
import numpy as np

from cnnlab.data.normalize import Normalization


def train_batches(source, *, batch_size: int, seed: int, epoch: int, normalization: Normalization) -> grain.MapDataset:
    """Epoch `epoch` of training: a permutation seeded by (seed, epoch), whole batches only.

    The result is random access, so batch k of any epoch is the same on every
    run: resuming mid-training replays exactly the batches it would have seen.
    """
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return (
        grain.MapDataset.source(source)
        .shuffle(seed=epoch_seed)
        .map(functools.partial(_to_arrays, normalization))
        .batch(batch_size, drop_remainder=True)
    )


def eval_batches(source, *, batch_size: int, normalization: Normalization) -> grain.MapDataset:
    """Every example exactly once, in order; the last batch is padded and masked."""
    return (
        grain.MapDataset.source(source)
        .map(functools.partial(_to_arrays, normalization))
        .batch(batch_size, drop_remainder=False)
        .map(functools.partial(_pad_batch, batch_size))
    )


def _to_arrays(normalization: Normalization, record: dict) -> dict[str, np.ndarray]:
    return {"image": normalization(record["image"]), "label": np.int32(record["label"])}


def _pad_batch(batch_size: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pad to `batch_size` so that every eval batch has one shape (one compile)."""
    n = len(batch["label"])
    padded = {k: np.concatenate([v, np.zeros((batch_size - n, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
    padded["mask"] = np.arange(batch_size) < n
    return padded
