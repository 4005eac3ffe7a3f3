"""Your own images, one folder per class, as a TFDS builder.

The layout is `root/<class name>/*.{jpg,jpeg,png,bmp}`; class names are the
folder names in sorted order, so label i is the i-th folder. Each image is
decoded with PIL (EXIF rotation applied), converted to the configured
channels and resized to `image_size` x `image_size` when the data set is
prepared. Files that are not images, or that PIL cannot decode, are skipped
and listed by path; they never stop the preparation. The builder config name
carries a fingerprint of the image files (paths, sizes, modification times)
together with the size and channels, so adding, removing or editing an image
prepares a new version instead of reading a stale one.
"""

import concurrent.futures
import dataclasses
import logging
import os
import zlib
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, ImageOps

from cnnlab.data import fingerprint, images

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, zlib.error, Image.DecompressionBombError)


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """What `root` holds, before any image is decoded."""

    root: Path
    class_names: tuple[str, ...]
    files: tuple[tuple[Path, int], ...]  # (image file, label), in class then name order
    not_images: tuple[Path, ...]  # files without an image suffix, and folders inside a class folder: skipped


def scan(root: str | Path) -> FolderScan:
    """The class folders of `root` and their image files; a clear error for an unusable layout."""
    root = Path(root).expanduser().absolute()
    layout = f"expected root/<class name>/*{{{','.join(IMAGE_SUFFIXES)}}}"
    if not root.is_dir():
        raise FileNotFoundError(f"data.root={root} is not a directory ({layout})")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))  # .DS_Store, .git
    class_dirs = [p for p in entries if p.is_dir()]
    not_images = [p for p in entries if not p.is_dir()]  # stray files next to the class folders
    if len(class_dirs) < 2:
        found = ", ".join(p.name for p in class_dirs) or "none"
        raise ValueError(
            f"data.root={root} has {len(class_dirs)} class folder(s) ({found}); need at least 2 ({layout})"
        )
    files = []
    for label, class_dir in enumerate(class_dirs):
        children = sorted(p for p in class_dir.iterdir() if not p.name.startswith("."))
        not_images += [p for p in children if p.is_dir()]  # a class is one folder: cat/sub/*.png is not read
        children = [p for p in children if p.is_file()]
        image_files = [p for p in children if p.suffix.lower() in IMAGE_SUFFIXES]
        if not image_files:
            raise ValueError(f"class folder {class_dir} has no {'/'.join(IMAGE_SUFFIXES)} files ({layout})")
        files += [(p, label) for p in image_files]
        not_images += [p for p in children if p.suffix.lower() not in IMAGE_SUFFIXES]
    return FolderScan(root, tuple(p.name for p in class_dirs), tuple(files), tuple(not_images))


def decode(path: Path, size: int, channels: int) -> np.ndarray | None:
    """(size, size, channels) uint8, or None when PIL cannot read `path`."""
    try:
        with Image.open(path) as image:
            image.draft(images.MODES[channels], (size, size))  # JPEG: decode at a reduced scale
            return images.to_array(ImageOps.exif_transpose(image), size, channels)
    except DECODE_ERRORS as e:
        log.debug("cannot decode %s: %s", path, e)
        return None


class LabeledImageFolder(tfds.core.GeneratorBasedBuilder):
    """Images in `root/<class name>/`, one `train` split; split into train/val/test later."""

    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, *, root: str | Path, image_size: int, channels: int, **kwargs):
        images.check_channels(channels)
        self.folder = scan(root)
        self.image_size, self.channels = image_size, channels
        digest = fingerprint.of_files(
            [path for path, _ in self.folder.files], root=self.folder.root, extra=self.folder.class_names
        )
        # e.g. "flowers-64px-3ch-1a2b3c4d5e": readable, and new for any change of the source.
        slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.folder.root.name) or "root"
        config = tfds.core.BuilderConfig(
            name=f"{slug}-{image_size}px-{channels}ch-{digest}",
            description=f"{image_size}x{image_size}x{channels} images of {self.folder.root}",
        )
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        n, c = self.image_size, self.channels
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(n, n, c), dtype=np.uint8, encoding="bytes"),
                    "label": tfds.features.ClassLabel(names=self.folder.class_names),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # record order is class, then file name
            metadata=tfds.core.MetadataDict(),  # "corrupt": files skipped while preparing
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # local files only
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        paths = [path for path, _ in self.folder.files]
        decode_one = lambda path: decode(path, self.image_size, self.channels)  # noqa: E731
        # PIL releases the GIL while decoding and resizing: threads use every core.
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            decoded = pool.map(decode_one, paths)
            corrupt, counts = [], np.zeros(len(self.folder.class_names), dtype=np.int64)
            for i, ((path, label), image) in enumerate(zip(self.folder.files, decoded)):
                if image is None:
                    corrupt.append(path.relative_to(self.folder.root).as_posix())
                    continue
                counts[label] += 1
                yield i, {"image": image, "label": label}  # integer keys: written in scan order
        empty = [name for name, count in zip(self.folder.class_names, counts) if count == 0]
        if empty:  # raised before TFDS renames its incomplete directory: nothing is left prepared
            raise ValueError(f"class folder(s) {', '.join(empty)} in {self.folder.root} have no readable image")
        self.info.metadata["corrupt"] = corrupt

    def skipped(self) -> list[Path]:
        """Every file left out: not an image, or corrupt when the data set was prepared."""
        corrupt = [self.folder.root / p for p in self.info.metadata.get("corrupt", [])]
        return sorted([*self.folder.not_images, *corrupt])
