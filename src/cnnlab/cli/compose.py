"""The run config for a command that writes no run: Hydra's compose API, not `@hydra.main`.

`@hydra.main` makes a run directory (`runs/<time>/`) at every call; a command
that only prints or writes one named file composes the same configs instead.
"""

import sys
from collections.abc import Sequence

from omegaconf import DictConfig


def from_command_line(argv: Sequence[str] | None, doc: str) -> tuple[DictConfig, list[str]] | None:
    """The composed config and the overrides of `argv` (default: sys.argv[1:]); None after
    printing `doc` for -h/--help."""
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(o in ("-h", "--help") for o in overrides):
        print(doc)
        return None
    from hydra import compose, initialize_config_module

    with initialize_config_module("cnnlab.conf", version_base=None):
        return compose("config", overrides=overrides), overrides
