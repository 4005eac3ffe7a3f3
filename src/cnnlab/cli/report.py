"""`cnnlab-report <multirun dir>`: report.md and report.png over the jobs of a sweep.

    cnnlab-train -m optimizer=sgd,adam seed=0,1,2      # writes multirun/<date>_<time>/
    cnnlab-report multirun/<date>_<time>              # -> report.md, report.png there
    cnnlab-report runs/<vmap sweep run dir> --x step wall_s   # also report_step.png, report_wall_s.png

Failed jobs are listed with their error; they do not stop the report. For a search
(hydra/sweeper=optuna: the directory holds optimization_results.yaml), the report also
names the trial selected on validation and its test score, computed once and kept in
selected.json (cnnlab.analysis.selection).
"""

import argparse
import sys
from pathlib import Path
from typing import Sequence

from cnnlab.report import sweep, sweep_figure


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cnnlab-report", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a multirun directory, or a vmap sweep's run directory")
    extra = [x for x in sweep_figure.PANELS if x != "epoch"]
    parser.add_argument("--x", nargs="+", default=[], choices=extra, metavar="AXIS",
                        help=f"also draw the losses against {' or '.join(extra)}: report_<AXIS>.png")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.directory.is_dir():
        sys.exit(f"cnnlab-report: {args.directory} is not a directory")
    try:
        jobs = sweep.find_jobs(args.directory)
        selected = []
        if jobs and (args.directory / sweep.SEARCH_RESULTS).is_file():  # a search: its selected trial, tested
            import logging

            from cnnlab.analysis import selection

            logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's notes on reading a checkpoint read-only
            selected = selection.markdown(selection.select(args.directory, jobs))
        written = sweep.write(args.directory, extra_x=tuple(args.x), jobs=jobs, selected=selected)
    except FileNotFoundError as error:
        sys.exit(f"cnnlab-report: {error}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
