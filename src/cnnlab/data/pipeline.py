"""grain pipelines: shuffled whole batches for training, padded batches for evaluation.

A batch is a dict of numpy arrays: `image` (B, H, W, C) float32, `label` (B,)
int32 and, for evaluation, `mask` (B,) bool marking the real examples.

The pipeline is source -> seeded shuffle (a new permutation each epoch) ->
batch -> map (read and normalize), as a `grain.MapDataset` whose element k is
batch k. It is random access: batch k is a pure function of (seed, epoch, k),
so resuming replays exactly the batches a run would have seen. Iterate with
worker threads and prefetch through
`.to_iter_dataset(grain.ReadOptions(num_threads=..., prefetch_buffer_size=...))`,
whose iterator's `get_state()` / `set_state()` resume mid-epoch.

Why batches of indices rather than grain's per-example shuffle, map, batch:
grain spends ~100 us of Python per example and stage, which caps a thread
near 10,000 images/s; reading a whole batch with one fancy index and
normalizing it in one NumPy expression costs that per batch instead.

With several hosts (`shard_index` of `shard_count`, i.e. jax.process_index()
of jax.process_count()), each host reads only its own examples and `B` is the
per-host batch; every host yields the same number of batches, so collective
steps never wait on a host that ran out.
"""

import grain
import numpy as np

from cnnlab.data import records
from cnnlab.data.normalize import Normalization


class _TrainBatch:
    """Batch k of one host's share of one epoch's permutation."""

    def __init__(self, source, order: np.ndarray, batch_size: int, normalization: Normalization):
        self.source, self.order, self.batch_size, self.normalization = source, order, batch_size, normalization

    def __call__(self, k: int) -> dict[str, np.ndarray]:
        positions = self.order[k * self.batch_size : (k + 1) * self.batch_size]  # (B,)
        images, labels = records.read_batch(self.source, positions)
        return {"image": self.normalization(images), "label": labels.astype(np.int32)}


class _EvalBatch:
    """Batch k of one host's share (examples i, i + S, ...), padded past the end and masked."""

    def __init__(self, source, batch_size: int, normalization: Normalization, shard_index: int, shard_count: int):
        self.source, self.batch_size, self.normalization = source, batch_size, normalization
        self.shard_index, self.shard_count = shard_index, shard_count
        self.image_shape = np.shape(source[0]["image"])  # (H, W, C)

    def __call__(self, k: int) -> dict[str, np.ndarray]:
        positions = np.arange(k * self.batch_size, (k + 1) * self.batch_size) * self.shard_count + self.shard_index
        mask = positions < len(self.source)  # (B,)
        image = np.zeros((self.batch_size, *self.image_shape), np.float32)
        label = np.zeros(self.batch_size, np.int32)
        if mask.any():
            images, labels = records.read_batch(self.source, positions[mask])
            image[mask], label[mask] = self.normalization(images), labels
        return {"image": image, "label": label, "mask": mask}


def train_batches(
    source,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    normalization: Normalization,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.MapDataset:
    """Epoch `epoch` of training: a permutation seeded by (seed, epoch), whole batches only.

    The permutation is global: host i takes its positions i, i + S, i + 2S, ...
    of it, after cutting it to a multiple of S * B, so hosts are disjoint and
    all of them yield len(source) // (S * B) batches.
    """
    _check_shard(shard_index, shard_count)
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    usable = len(source) // (batch_size * shard_count) * batch_size * shard_count
    order = rng.permutation(len(source))[:usable][shard_index::shard_count]  # (usable / S,)
    num_batches = len(order) // batch_size
    return grain.MapDataset.range(num_batches).map(_TrainBatch(source, order, batch_size, normalization))


def eval_batches(
    source,
    *,
    batch_size: int,
    normalization: Normalization,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.MapDataset:
    """Every example exactly once over all hosts, in order; padding is masked out.

    Each host's share is padded up to ceil(ceil(N / S) / B) batches, so every
    host yields the same number of fixed-shape batches (one compile) and the
    masks count each example exactly once.
    """
    _check_shard(shard_index, shard_count)
    if len(source) == 0:
        raise ValueError("cannot evaluate an empty split (check data.split / data.val_fraction)")
    per_host = -(-len(source) // shard_count)  # ceil(N / S)
    num_batches = -(-per_host // batch_size)
    return grain.MapDataset.range(num_batches).map(
        _EvalBatch(source, batch_size, normalization, shard_index, shard_count)
    )


def _check_shard(shard_index: int, shard_count: int) -> None:
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index must be in [0, shard_count), got {shard_index} of {shard_count}")
