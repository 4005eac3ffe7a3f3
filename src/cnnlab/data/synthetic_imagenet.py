"""A small synthetic data set shaped like TFDS `imagenet2012`, for running the ImageNet recipes anywhere.

`cnnlab-make-synthetic-imagenet` writes it once into a TFDS data dir:

    cnnlab-make-synthetic-imagenet --data_dir ~/tensorflow_datasets
    cnnlab-train experiment=imagenet_resnet50 debug=imagenet

It has imagenet2012's features and splits, so the `tfds` source reads it
exactly as it reads the real set prepared elsewhere: `image` JPEG-encoded RGB
of varied sizes (as ImageNet's photographs are), `label` one of 1,000 classes
named like WordNet ids (`n00000000` ...), `file_name`; splits `train` and
`validation`; array_record files, written without TensorFlow. The pictures
are smooth random colour fields, each tinted by its class, so a model can
learn a little from them, but nothing is meant to be learned: the set
exercises decoding, resizing, sharding, augmentation and checkpointing.
"""

import io

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

NUM_CLASSES = 1000


class SyntheticImagenet(tfds.core.GeneratorBasedBuilder):
    """`synthetic_imagenet`: imagenet2012's features, a few JPEGs per split."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, train_examples: int = 16, validation_examples: int = 16, min_size: int = 48,
                 max_size: int = 160, seed: int = 0, **kwargs):  # fmt: skip
        if min(train_examples, validation_examples) < 1:
            raise ValueError(f"need at least one example per split, got {train_examples} and {validation_examples}")
        if not 8 <= min_size <= max_size:
            raise ValueError(f"image sizes must satisfy 8 <= min_size <= max_size, got {min_size} and {max_size}")
        self.sizes = {"train": train_examples, "validation": validation_examples}
        self.min_size, self.max_size, self.seed = min_size, max_size, seed
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(names=[f"n{i:08d}" for i in range(NUM_CLASSES)]),
                    "file_name": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # record i is example i: the same files on every machine
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated: nothing to download
        return {split: self._generate_examples(split) for split in self.sizes}

    def _generate_examples(self, split: str):
        rng = np.random.default_rng([self.seed, list(self.sizes).index(split)])
        for i in range(self.sizes[split]):
            label = int(rng.integers(NUM_CLASSES))
            height, width = rng.integers(self.min_size, self.max_size + 1, size=2)
            name = f"{split}_{i:05d}_n{label:08d}.JPEG"
            yield name, {"image": jpeg(picture(rng, label, height, width)), "label": label, "file_name": name}


def picture(rng: np.random.Generator, label: int, height: int, width: int) -> np.ndarray:
    """(height, width, 3) uint8: coarse noise, smoothly upsampled, tinted by the class."""
    coarse = rng.uniform(0, 255, size=(max(height // 16, 2), max(width // 16, 2), 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((int(width), int(height)), Image.BICUBIC), np.float32)
    tint = np.array([(label * 37) % 256, (label * 91) % 256, (label * 157) % 256], np.float32)  # per class
    return np.clip(0.6 * field + 0.4 * tint, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes, encoded by PIL: TFDS stores them as they are (no TensorFlow needed)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def prepare(data_dir: str, *, overwrite: bool = False, **sizes) -> tfds.core.DatasetBuilder:
    """Write the data set into `data_dir` (array_record), or keep the one already there."""
    builder = SyntheticImagenet(data_dir=data_dir, **sizes)
    if overwrite and builder.is_prepared():
        epath.Path(builder.data_dir).rmtree()  # local or gs://
        builder = SyntheticImagenet(data_dir=data_dir, **sizes)
    builder.download_and_prepare(file_format="array_record")  # a no-op once prepared
    return builder
