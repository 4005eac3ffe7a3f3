"""Data sets as TFDS array_record sources, split, normalized and batched by grain.

`load(cfg)` -> `Dataset`; `train_batches` / `eval_batches` -> grain MapDatasets;
`augment.build(cfg)` / `augment.build_eval(cfg)` -> the on-device augmentation
of training batches and the evaluation transform (centre crop).
"""

from cnnlab.data import augment
from cnnlab.data.normalize import Normalization
from cnnlab.data.pipeline import eval_batches, train_batches
from cnnlab.data.sources import SOURCES, Dataset, load

__all__ = ["SOURCES", "Dataset", "Normalization", "augment", "eval_batches", "load", "train_batches"]
