"""`cnnlab-trajectories`: draw the optimizers' paths on 2-D test surfaces, one PNG per surface.

    cnnlab-trajectories                                   # all seven, every surface
    cnnlab-trajectories --optimizers sgd momentum --steps 200 --out runs/trajectories
"""

import argparse
from pathlib import Path
from typing import Sequence

from cnnlab.report import trajectories


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cnnlab-trajectories",
        description="Paths of the lecture's optimizers on a ravine, Rosenbrock, a saddle and Beale.",
    )
    parser.add_argument("--optimizers", nargs="+", default=list(trajectories.OPTIMIZERS),
                        choices=trajectories.OPTIMIZERS, metavar="NAME",
                        help=f"optimizers to draw (default: all of {', '.join(trajectories.OPTIMIZERS)})")
    parser.add_argument("--surfaces", nargs="+", default=list(trajectories.SURFACES_BY_NAME),
                        choices=list(trajectories.SURFACES_BY_NAME), metavar="NAME",
                        help=f"surfaces to draw (default: all of {', '.join(trajectories.SURFACES_BY_NAME)})")
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps per path (default: 500)")
    parser.add_argument("--out", type=Path, default=Path("runs/trajectories"),
                        help="folder for the PNGs (default: runs/trajectories)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    written = trajectories.write_figures(args.out, args.optimizers, args.steps, args.surfaces)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
