import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory) -> Path:
    """The runs a test session starts share a compilation cache of their own, not the user's ~/.cache."""
    path = tmp_path_factory.mktemp("compilation_cache")
    os.environ["CNNLAB_COMPILATION_CACHE"] = str(path)
    return path


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
        flags = [o for o in overrides if o.startswith("-")]  # e.g. -m: Hydra's flags come before the overrides
        cmd = [sys.executable, "-m", "cnnlab.train", *flags, "logger.progress_bar=false",
               *(o for o in overrides if not o.startswith("-"))]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def kill_after_first_checkpoint(*overrides: str, run_dir: Path) -> list[int]:
        """Start `python -m cnnlab.train`, SIGKILL it once its first checkpoint exists; the steps saved."""
        env = {**os.environ, "TFDS_DATA_DIR": str(data_dir)}
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab.train", "logger.progress_bar=false",
                                 f"hydra.run.dir={run_dir}", *overrides], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.time() + 300
        while not any(p.name.isdigit() for p in (run_dir / "checkpoints").glob("*")) and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return sorted(int(p.name) for p in (run_dir / "checkpoints").glob("*") if p.name.isdigit())

    run.kill_after_first_checkpoint = kill_after_first_checkpoint
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


@pytest.fixture(scope="session")
def digits_run(cli, tmp_path_factory) -> Path:
    """One finished 1-epoch LeNet-5 run on the digits (the default experiment), shared by the
    tests that read a trained run back (cnnlab-analyze, cnnlab-predict)."""
    run_dir = tmp_path_factory.mktemp("digits_run")
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=1")
    return run_dir
