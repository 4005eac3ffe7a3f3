"""Any data set that TFDS has already prepared, read from its files without TensorFlow.

`open_builder("cifar10", data_dir)` reads the data set's metadata from
`data_dir/cifar10/<config>/<version>/` (local or `gs://`) and never imports
the data set's generation code, so a set prepared on another machine opens
here as it is. Random access needs the array_record file format. Image
features are decoded by TFDS's NumPy path, which uses PIL when OpenCV is
absent: no TensorFlow is involved. `Records` then resizes every image to
`data.image_size` and converts it to `data.channels`.
"""

import tensorflow_datasets as tfds
from tensorflow_datasets.core import read_only_builder

ARRAY_RECORD = "array_record"


def open_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """The prepared data set `name` ("cifar10", "imagenet2012/5.1.0", "ds/config") in `data_dir`."""
    try:
        builder = read_only_builder.builder_from_files(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise FileNotFoundError(
            f"data.tfds_name={name!r} is not prepared in data.data_dir={data_dir}: cnnlab never downloads. "
            f"Prepare it where it can be downloaded with file_format=array_record, e.g. "
            f"`tfds build {name} --data_dir=... --file_format=array_record`, then copy or point data.data_dir there."
        ) from e
    formats = {f.value for f in builder.info.available_file_formats()}
    if ARRAY_RECORD not in formats:
        raise ValueError(
            f"{name} in {data_dir} is stored as {', '.join(sorted(formats)) or 'an unknown format'}; random access "
            f"needs {ARRAY_RECORD}. Convert it once: `tfds convert_format --dataset_dir={builder.data_dir} "
            f"--out_file_format={ARRAY_RECORD}` (that step needs TensorFlow to read tfrecord)."
        )
    return builder


def feature_keys(builder: tfds.core.DatasetBuilder) -> tuple[str, str]:
    """(image key, label key): the supervised keys where the data set declares them."""
    keys = builder.info.supervised_keys
    declared = keys and len(keys) == 2 and all(isinstance(k, str) for k in keys)
    image_key, label_key = keys if declared else ("image", "label")
    features = builder.info.features
    missing = [k for k in (image_key, label_key) if k not in features]
    if missing:
        raise ValueError(f"{builder.info.full_name} has no feature {missing[0]!r}; its features: {list(features)}")
    return image_key, label_key


def label_only_source(builder: tfds.core.DatasetBuilder, split: str, image_key: str):
    """The split with image decoding skipped: reading every label parses no JPEG."""
    return builder.as_data_source(split=split, decoders={image_key: tfds.decode.SkipDecoding()})
