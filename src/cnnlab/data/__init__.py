"""Data sets as TFDS array_record sources, split, normalized and batched by grain."""

from cnnlab.data.pipeline import eval_batches, train_batches
from cnnlab.data.sources import Dataset, load

__all__ = ["Dataset", "eval_batches", "load", "train_batches"]
