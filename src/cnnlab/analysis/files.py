"""Image files a user names (files or folders), decoded as training decoded its image folder."""

from pathlib import Path

import numpy as np

from cnnlab.data import image_folder


def image_files(paths: list[Path]) -> list[Path]:
    """The files named, and the image files under each folder named (recursively, sorted).

    Raises FileNotFoundError naming the first path that does not exist."""
    files = []
    for path in paths:
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in image_folder.IMAGE_SUFFIXES)
            files += sorted(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory (expected image files or folders of them)")
    return files


def decode_all(files: list[Path], size: int, channels: int) -> tuple[list[Path], np.ndarray, list[Path]]:
    """(decoded files, their (n, size, size, channels) uint8 pixels, files PIL cannot read):
    `image_folder.decode`, so EXIF rotation, transparency, channels and resizing are training's."""
    decoded, pixels, unreadable = [], [], []
    for path in files:
        image = image_folder.decode(path, size, channels)
        if image is None:
            unreadable.append(path)
        else:
            decoded.append(path)
            pixels.append(image)
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, channels), np.uint8)
    return decoded, stacked, unreadable
