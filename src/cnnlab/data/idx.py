"""MNIST and Fashion-MNIST from their four IDX files, as TFDS builders.

The IDX format (http://yann.lecun.com/exdb/mnist/) is a big-endian header,
`0x00 0x00 <type> <ndim>` then `ndim` int32 sizes, then the data: images are
`0x00000803` (N, 28, 28) uint8 and labels `0x00000801` (N,) uint8. Every
header is checked against its file before anything is written, so a
truncated or swapped file is reported by path; TFDS prepares into an
`incomplete.*` directory and renames it only once all splits are written, so
a failure never leaves a data set that looks prepared.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from cnnlab.data import fingerprint, images

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
# The four files, by split: the standard names that both data sets share.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
MNIST_CLASSES = tuple(str(d) for d in range(10))


class IdxError(ValueError):
    """An IDX file that is missing, truncated or inconsistent; the message names it."""


def find(directory: Path, stem: str) -> Path:
    """`directory/stem.gz`, or the uncompressed `directory/stem`."""
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise IdxError(f"{directory / stem}.gz not found (data.dir={directory})")


def read(path: Path, *, magic: int) -> np.ndarray:
    """The array stored in one IDX file (gzip-compressed or not), its header checked."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise IdxError(f"{path}: cannot decompress ({e})") from e
    if len(raw) < 4:
        raise IdxError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise IdxError(f"{path}: magic number 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(raw[4:header], dtype=">i4"))
    if len(shape) != ndim or min(shape, default=0) <= 0:
        raise IdxError(f"{path}: bad dimensions {shape}")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise IdxError(f"{path}: {len(raw)} bytes, but the header {shape} says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_split(directory: Path, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W) uint8, labels (N,) uint8) of one split, checked to agree."""
    image_path, label_path = (find(directory, stem) for stem in FILES[split])
    images_ = read(image_path, magic=IMAGES_MAGIC)
    labels = read(label_path, magic=LABELS_MAGIC)
    if len(images_) != len(labels):
        raise IdxError(f"{image_path} has {len(images_)} images but {label_path} has {len(labels)} labels")
    if labels.max() >= num_classes:
        raise IdxError(f"{label_path}: label {labels.max()} outside 0..{num_classes - 1}")
    return images_, labels


def source_files(directory: Path) -> list[Path]:
    """The four files, or an IdxError naming the first one missing."""
    return [find(directory, stem) for pair in FILES.values() for stem in pair]


class _IdxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Train and test splits of one IDX data set; one builder config per source and size.

    The config name holds the image size and a fingerprint of the four files
    (names, sizes, modification times), so new files or another size prepare
    anew instead of reading a stale version. Images are stored grey; another
    `data.channels` is converted on read.
    """

    VERSION = tfds.core.Version("1.0.0")
    CLASS_NAMES: tuple[str, ...] = ()
    HOMEPAGE = ""
    GET_FILES = ""  # where the four files come from, for the error when they are missing

    def __init__(self, *, directory: str | Path, image_size: int = 28, **kwargs):
        self.directory, self.image_size = Path(directory).expanduser(), image_size
        try:
            files = source_files(self.directory)
        except IdxError as e:
            raise IdxError(f"{e}. {self.GET_FILES}") from e
        digest = fingerprint.of_files(files, root=self.directory)
        config = tfds.core.BuilderConfig(
            name=f"{image_size}px-{digest}", description=f"{image_size}x{image_size}x1 from {self.directory}"
        )
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        n = self.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    # bytes: 10x faster to write and read than a list of 784 int64s
                    "image": tfds.features.Tensor(shape=(n, n, 1), dtype=np.uint8, encoding="bytes"),
                    "label": tfds.features.ClassLabel(names=self.CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # record i is the file's image i: the first train label stays first
            homepage=self.HOMEPAGE,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # local files only: nothing is downloaded
        # Read and check both splits before TFDS writes anything.
        arrays = {split: read_split(self.directory, split, len(self.CLASS_NAMES)) for split in FILES}
        shapes = {split: images_.shape[1:] for split, (images_, _) in arrays.items()}
        if len(set(shapes.values())) > 1:  # one model must take both: a mix-up of two data sets' files
            raise IdxError(f"the IDX files in {self.directory} hold images of different sizes: "
                           + ", ".join(f"{split} {h}x{w}" for split, (h, w) in shapes.items()))  # fmt: skip
        return {split: self._generate_examples(*pair) for split, pair in arrays.items()}

    def _generate_examples(self, images_: np.ndarray, labels: np.ndarray):
        fitted = images.fit_grey_batch(images_, self.image_size)  # (N, n, n, 1)
        for i, (image, label) in enumerate(zip(fitted, labels)):
            yield i, {"image": image, "label": int(label)}


class FashionMnistIdx(_IdxBuilder):
    """Fashion-MNIST (Xiao et al., 2017): 60,000 + 10,000 28x28 grey images of 10 clothing classes."""

    CLASS_NAMES = FASHION_MNIST_CLASSES
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
    GET_FILES = (
        "On Debian or Ubuntu: `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist); "
        f"elsewhere download the four *-ubyte.gz files listed at {HOMEPAGE} and set data.dir to their folder"
    )


class MnistIdx(_IdxBuilder):
    """MNIST (LeCun et al., 1998): 60,000 + 10,000 28x28 grey handwritten digits."""

    CLASS_NAMES = MNIST_CLASSES
    HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"
    GET_FILES = "Download the four *-ubyte.gz MNIST files (e.g. from a mirror of " + HOMEPAGE + ") and set data.dir"
