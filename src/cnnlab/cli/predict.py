"""`cnnlab-predict RUN_DIR PATH... [--top K] [--csv FILE] [--checkpoint best|latest]`: classify image files.

    cnnlab-predict runs/flowers photos/rose.jpg photos/more/        # files, or folders of them
    cnnlab-predict runs/flowers photos/ --top 1 --csv predictions.csv

Each image is decoded, converted to the run's channels and resized to its image size
exactly as `data=image_folder` prepares a training image, then normalized with the run's
statistics. One line per file: its top K classes with their probabilities. Files that
cannot be decoded are named on stderr and skipped. Without --checkpoint, the weights are
those summary.json was tested with.
"""

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnnlab-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("run_dir", type=Path, help="a run directory that cnnlab-train wrote")
    parser.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders of them")
    parser.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (default: 3)")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write path, then class and probability per rank")
    parser.add_argument("--checkpoint", choices=("best", "latest"),
                        help="which weights (default: the ones summary.json's test figures come from)")  # fmt: skip
    return parser.parse_args(argv)


def top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
    """(n, k) class indices, most probable first (ties: the lower index first)."""
    return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.top < 1:
        sys.exit(f"cnnlab-predict: --top must be at least 1, got {args.top}")
    from cnnlab import analysis  # after argparse: --help stays fast
    from cnnlab.analysis import evaluate, files

    # orbax warns three times that a read-only checkpoint manager is read-only: what is asked for here
    logging.getLogger("absl").setLevel(logging.ERROR)

    try:
        paths = files.image_files(args.paths)
        run = analysis.load(args.run_dir, args.checkpoint)
    except (analysis.RunDirError, FileNotFoundError, ValueError) as error:  # what the user can fix: one line
        sys.exit(f"cnnlab-predict: {error}")
    size, channels = run.dataset.image_shape[0], run.dataset.image_shape[2]
    decoded, pixels, unreadable = files.decode_all(paths, size, channels)
    for path in unreadable:
        print(f"cnnlab-predict: {path}: not an image PIL can decode; skipped", file=sys.stderr)
    probabilities = evaluate.probabilities_of(run, pixels)
    ranks = top_k(probabilities, min(args.top, run.dataset.num_classes))
    rows = [[(run.class_names[c], float(p[c])) for c in rank] for p, rank in zip(probabilities, ranks)]
    for path, row in zip(decoded, rows):
        print(f"{path}: " + ", ".join(f"{name} {p:.4f}" for name, p in row))
    if args.csv:
        write_csv(args.csv, decoded, rows)
    if not decoded:
        sys.exit("cnnlab-predict: no image could be decoded")


def write_csv(path: Path, decoded: list[Path], rows: list[list[tuple[str, float]]]) -> None:
    k = len(rows[0]) if rows else 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", *(f"{what}_{i}" for i in range(1, k + 1) for what in ("class", "probability"))])
        for file, row in zip(decoded, rows):
            writer.writerow([str(file), *(x for name, p in row for x in (name, f"{p:.6f}"))])


if __name__ == "__main__":
    main()
