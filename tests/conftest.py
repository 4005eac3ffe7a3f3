import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One TFDS data dir for the whole session: each data set is prepared once."""
    return tmp_path_factory.mktemp("tensorflow_datasets")


@pytest.fixture(scope="session")
def digits_cfg(data_dir) -> dict:
    return {
        "name": "digits",
        "data_dir": str(data_dir),
        "image_size": 32,
        "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0},
        "normalize": "zscore",
    }


@pytest.fixture(scope="session")
def cli(data_dir):
    """Run `python -m cnnlab.train <overrides>` in a subprocess, as a user would."""

    def run(*overrides: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "TFDS_DATA_DIR": str(data_dir)}
        cmd = [sys.executable, "-m", "cnnlab.train", "logger.progress_bar=false", *overrides]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.data_dir = data_dir
    return run


@pytest.fixture(scope="session")
def compose(data_dir):
    """The resolved config of `cnnlab-train <overrides>`, as the plain dicts the trainer takes."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    def make(*overrides: str) -> dict:
        with initialize_config_module("cnnlab.conf", version_base=None):
            cfg = hydra_compose("config", overrides=[f"data.data_dir={data_dir}", "logger.progress_bar=false",
                                                     *overrides])  # fmt: skip
        return OmegaConf.to_container(cfg, resolve=True)

    return make
