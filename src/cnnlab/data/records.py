"""Random-access record sources: TFDS data sources seen as {"image", "label"} records.

Every split the rest of cnnlab reads is a sequence of records
`{"image": (H, W, C) uint8, "label": int}` with one fixed image shape.
`Records` adapts a TFDS data source (any feature names, any stored image
size) to that form; `ArraySource` holds a whole split in memory, which small
data sets (Fashion-MNIST: 60 MB) use so that the grain workers only index
arrays instead of parsing a record per example.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.data import images

IN_MEMORY_MAX_BYTES = 2 << 30  # `data.in_memory: auto` loads splits up to 2 GiB of pixels
READ_CHUNK = 1024  # records per batched read


class Records(Sequence):
    """A TFDS data source's records, images fitted to (size, size, channels) on read."""

    def __init__(self, source, *, size: int, channels: int, image_key: str = "image", label_key: str = "label"):
        self.source, self.size, self.channels = source, size, channels
        self.image_key, self.label_key = image_key, label_key

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._fit(self.source[i])

    def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
        return [self._fit(record) for record in self.source.__getitems__(list(keys))]

    def _fit(self, record: dict) -> dict[str, Any]:
        image = images.fit_array(np.asarray(record[self.image_key]), self.size, self.channels)
        return {"image": image, "label": int(record[self.label_key])}

    def __repr__(self) -> str:
        return f"Records({self.source!r}, {self.size}x{self.size}x{self.channels})"


class ArraySource(Sequence):
    """A split held in memory: `images` (N, H, W, C) uint8 and `labels` (N,)."""

    def __init__(self, images_: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images_, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i])}

    def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
        return [self[i] for i in keys]

    def __repr__(self) -> str:
        return f"ArraySource({self.images.shape} {self.images.dtype})"


class Subset(Sequence):
    """The records of `source` at `indices`, as a random-access data source."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.source[int(self.indices[i])]

    def __getitems__(self, keys: Sequence[int]) -> list[dict[str, Any]]:
        return read(self.source, self.indices[np.asarray(keys, dtype=np.int64)].tolist())

    def __repr__(self) -> str:
        return f"Subset({self.source!r}, {len(self)} records)"


def read_batch(source, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, H, W, C) uint8, labels (n,) int64) at `positions`; one fancy index when in memory."""
    while isinstance(source, Subset):
        source, positions = source.source, source.indices[positions]
    if isinstance(source, ArraySource):
        return source.images[positions], source.labels[positions]
    batch = read(source, np.asarray(positions).tolist())
    return np.stack([r["image"] for r in batch]), np.array([r["label"] for r in batch], dtype=np.int64)


def read(source, positions: Sequence[int]) -> list[dict[str, Any]]:
    """The records at `positions`, read in one batched call where the source has one."""
    if hasattr(source, "__getitems__"):
        return list(source.__getitems__(list(positions)))
    return [source[i] for i in positions]


def read_all(source) -> ArraySource:
    """Every record of `source`, as arrays in memory."""
    image_chunks, label_chunks = [], []
    for start in range(0, len(source), READ_CHUNK):
        chunk = read(source, range(start, min(start + READ_CHUNK, len(source))))
        image_chunks.append(np.stack([r["image"] for r in chunk]))  # (n, H, W, C)
        label_chunks.append(np.array([r["label"] for r in chunk], dtype=np.int64))
    return ArraySource(np.concatenate(image_chunks), np.concatenate(label_chunks))


def labels(source, key: str = "label") -> np.ndarray:
    """(N,) int64 labels of every record, read in batches.

    For a large TFDS source, pass one opened with the image decoding skipped
    (`decoders={"image": tfds.decode.SkipDecoding()}`): only labels are parsed.
    """
    if isinstance(source, ArraySource):
        return source.labels
    chunks = [
        [r[key] for r in read(source, range(start, min(start + READ_CHUNK, len(source))))]
        for start in range(0, len(source), READ_CHUNK)
    ]
    return np.array([label for chunk in chunks for label in chunk], dtype=np.int64)


def fits_in_memory(num_records: int, image_shape: tuple[int, ...], setting: Any) -> bool:
    """`data.in_memory`: true, false, or auto (null) for up to IN_MEMORY_MAX_BYTES."""
    if setting in (None, "auto"):
        return num_records * int(np.prod(image_shape)) <= IN_MEMORY_MAX_BYTES
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"data.in_memory must be true, false or auto, got {setting!r}")
