"""grain pipelines: per-host shards, padded evaluation, exact resume from an iterator state."""

import grain
import numpy as np
import pytest

from cnnlab import data
from cnnlab.data.records import ArraySource

NONE = data.Normalization(np.zeros(1, np.float32), np.ones(1, np.float32))


def numbered(n: int) -> ArraySource:
    """n records whose label is their index, so batches show which examples they hold."""
    return ArraySource(np.zeros((n, 4, 4, 1), np.uint8), np.arange(n))


@pytest.mark.parametrize("n", [992, 1000])  # 992 = 31 batches of 16 on each of 2 hosts; 1000 leaves 8 over
def test_two_hosts_read_disjoint_shards_that_cover_train(n):
    kwargs = dict(batch_size=16, seed=3, normalization=NONE, shard_count=2)
    hosts = [data.train_batches(numbered(n), epoch=1, shard_index=i, **kwargs) for i in range(2)]
    seen = [np.concatenate([batch["label"] for batch in host]) for host in hosts]
    assert len(hosts[0]) == len(hosts[1]) == 31  # same number of steps on every host
    assert not set(seen[0]) & set(seen[1])  # disjoint
    union = np.concatenate(seen)
    assert len(union) == len(set(union)) == 992  # whole batches only: at most S * B - 1 left for the next epoch
    if n == 992:
        assert np.array_equal(np.sort(union), np.arange(n))  # covering
    next_epoch = data.train_batches(numbered(n), epoch=2, shard_index=0, **kwargs)
    assert not np.array_equal(next_epoch[0]["label"], hosts[0][0]["label"])  # reshuffled each epoch


@pytest.mark.parametrize("shard_count", [1, 8])
def test_padded_evaluation_counts_each_example_once(shard_count):
    source = numbered(1077)  # 1077 = 8 * 134 + 5: neither the hosts nor the batch divide it
    hosts = [
        data.eval_batches(source, batch_size=16, normalization=NONE, shard_index=i, shard_count=shard_count)
        for i in range(shard_count)
    ]
    assert len({len(host) for host in hosts}) == 1  # every host (device group) runs the same number of steps
    batches = [b for host in hosts for b in host]
    assert all(b["image"].shape == (16, 4, 4, 1) and b["mask"].shape == (16,) for b in batches)  # one shape
    real = np.concatenate([b["label"][b["mask"]] for b in batches])
    assert np.array_equal(np.sort(real), np.arange(1077))  # each example exactly once, padding masked out
    assert sum(int(b["mask"].sum()) for b in batches) == 1077


def test_restoring_an_iterator_state_reproduces_the_next_batches(digits):
    train = digits.splits["train"]
    batches = data.train_batches(train, batch_size=32, seed=0, epoch=4, normalization=digits.normalization)
    options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)
    iterator = iter(batches.to_iter_dataset(options))
    for _ in range(5):
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator) for _ in range(4)]
    resumed = iter(batches.to_iter_dataset(options))
    resumed.set_state(state)
    for want, got in zip(expected, (next(resumed) for _ in range(4))):
        assert np.array_equal(want["image"], got["image"]) and np.array_equal(want["label"], got["label"])
    assert not np.array_equal(expected[0]["label"], batches[0]["label"])  # it resumed mid-epoch, not at the start
