"""`cnnlab-analyze RUN_DIR [--split test|val] [--checkpoint best|latest] [--out DIR]`: what a trained run learned.

    cnnlab-train hydra.run.dir=runs/lenet5
    cnnlab-analyze runs/lenet5                  # -> runs/lenet5/analysis/report.md and its figures

Writes into RUN_DIR/analysis/ (or --out) and nowhere else: confusion_matrix.png and .csv,
per_class.csv (precision, recall, F1, support), predictions.png (the split's first images),
misclassified.png (the most confident errors), filters.png (the first convolution's
kernels), feature_maps.png (one image at each stage), saliency.png (input gradients) and report.md with the run's summary.json. The data
split, normalization, class names and model are the run's own. Without --checkpoint, the
weights are those summary.json was tested with: the best epoch's when early stopping was
on, else the last epoch's.
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

SPLITS = ("test", "val")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnnlab-analyze", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("run_dir", type=Path, help="a run directory that cnnlab-train wrote")
    parser.add_argument("--split", default="test", choices=SPLITS, help="the split to analyze (default: test)")
    parser.add_argument("--checkpoint", choices=("best", "latest"),
                        help="which weights (default: the ones summary.json's test figures come from)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="the output directory (default: RUN_DIR/analysis)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from cnnlab import analysis  # after argparse: --help stays fast

    # orbax warns three times that a read-only checkpoint manager is read-only: what is asked for here
    logging.getLogger("absl").setLevel(logging.ERROR)

    try:
        run = analysis.load(args.run_dir, args.checkpoint)
        report = analysis.write(run, args.split, args.out or args.run_dir / "analysis")
    except (analysis.RunDirError, FileNotFoundError, ValueError) as error:  # what the user can fix: one line
        sys.exit(f"cnnlab-analyze: {error}")
    print(report)


if __name__ == "__main__":
    main()
