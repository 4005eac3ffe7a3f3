"""`cnnlab-make-synthetic-imagenet`: write the small ImageNet-shaped TFDS set that `debug=imagenet` trains on.

    cnnlab-make-synthetic-imagenet                          # into $TFDS_DATA_DIR or ~/tensorflow_datasets
    cnnlab-make-synthetic-imagenet --data_dir /tmp/tfds --train 64 --overwrite
    cnnlab-train experiment=imagenet_resnet50 debug=imagenet data.data_dir=/tmp/tfds
"""

import argparse
import os
from typing import Sequence

from cnnlab.data import synthetic_imagenet


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnnlab-make-synthetic-imagenet", description=__doc__.splitlines()[0])
    default_dir = os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    parser.add_argument("--data_dir", default=default_dir, help=f"the TFDS data dir (default: {default_dir})")
    parser.add_argument("--train", type=int, default=16, help="training images (default: 16, one debug step)")
    parser.add_argument("--validation", type=int, default=16, help="validation images (default: 16)")
    parser.add_argument("--min-size", type=int, default=48, help="smallest side in pixels (default: 48)")
    parser.add_argument("--max-size", type=int, default=160, help="largest side in pixels (default: 160)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a set already written there")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    data_dir = args.data_dir if "://" in args.data_dir else os.path.expanduser(args.data_dir)
    try:
        builder = synthetic_imagenet.prepare(
            data_dir, overwrite=args.overwrite, train_examples=args.train, validation_examples=args.validation,
            min_size=args.min_size, max_size=args.max_size, seed=args.seed,
        )  # fmt: skip
    except ValueError as error:
        raise SystemExit(f"cnnlab-make-synthetic-imagenet: {error}") from None
    splits = ", ".join(f"{name} {split.num_examples}" for name, split in builder.info.splits.items())
    print(f"{builder.data_dir}: {splits} images, {synthetic_imagenet.NUM_CLASSES} classes")


if __name__ == "__main__":
    main()
