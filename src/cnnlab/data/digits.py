"""The embedded `digits` data set as a TFDS builder (no TensorFlow needed).

scikit-learn ships 1,797 handwritten 8x8 digits with 17 grey levels (0..16).
They are scaled to 0..255, resized with bilinear interpolation to
`image_size` x `image_size` and written as array_record files of Tensor
features, so that `tfds.data_source` reads them back without TensorFlow.
"""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


class Digits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's handwritten digits, one `train` split of all 1,797 images."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.1.0": "images stored as bytes (faster to write and read)"}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="32px", description="32x32x1, the default")]

    def __init__(self, *, image_size: int | None = None, config: str | None = None, **kwargs):
        # One builder config per size ("32px"), so that another size prepares
        # anew instead of reading files written for a different one.
        # `tfds.data_source("digits/32px")` passes the config by name.
        if image_size is None:
            image_size = int(config.removesuffix("px")) if config else 32
        self.image_size = image_size
        name = f"{image_size}px"
        known = {c.name for c in self.BUILDER_CONFIGS}
        config = name if name in known else tfds.core.BuilderConfig(name=name, description=f"{image_size}x{image_size}x1")
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        n = self.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(n, n, 1), dtype=np.uint8, encoding="bytes"),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # record i is sklearn's digit i
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the data ships with scikit-learn: nothing to download
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        for i, (image, label) in enumerate(zip(digits.images, digits.target)):
            yield i, {"image": resize_grey(image, self.image_size), "label": int(label)}


def resize_grey(image: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 image of grey levels 0..16 as a (size, size, 1) uint8 image in 0..255."""
    grey = Image.fromarray(np.round(image * (255 / 16)).astype(np.uint8), mode="L")
    return np.asarray(grey.resize((size, size), Image.BILINEAR), dtype=np.uint8)[..., None]
