"""Fashion-MNIST runs for the benchmarks: the real config, data and loop pieces.

The config is composed from conf/ with Hydra's compose API, exactly as
`cnnlab-train data=fashion_mnist ...` would resolve it; the data set is
prepared once under $TFDS_DATA_DIR, or build/bench-data.
"""

import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("TFDS_DATA_DIR", str(REPO / "build" / "bench-data"))


def config(*overrides: str) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose("config", overrides=["data=fashion_mnist", f"data.data_dir={DATA_DIR}", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)
