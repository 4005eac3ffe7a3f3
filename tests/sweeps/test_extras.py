"""A launcher or sweeper whose plugin is not installed is named with the extra that brings it."""

import importlib.util
import subprocess
import sys

from cnnlab.cli import extras
from tests.conftest import REPO


def test_a_missing_plugin_names_the_extra(monkeypatch):
    installed = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("hydra_plugins.") else installed(name, *a))  # fmt: skip
    assert extras.missing(["launcher=ray"]).startswith("launcher=ray needs cnnlab's `ray` extra: pip install 'cnnlab[ray]'")
    assert "cnnlab[slurm]" in extras.missing(["-m", "launcher=basic,submitit_slurm"])
    assert "cnnlab[optuna]" in extras.missing(["hydra/sweeper=optuna"])
    assert "hydra/sweeper=optuna" in extras.missing(["-m", "experiment=tune_adam"])  # through the preset
    assert extras.missing(["launcher=basic", "experiment=optimizer_sweep", "model=lenet5"]) is None


def test_cnnlab_train_stops_before_hydra_with_the_message(tmp_path):
    # A plugin package that is not importable stands in for one that is not installed.
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['hydra_plugins.hydra_optuna_sweeper'] = None\n")
    proc = subprocess.run([sys.executable, "-m", "cnnlab.train", "-m", "experiment=tune_adam"], cwd=REPO,
                          capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": ""})  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("cnnlab-train: hydra/sweeper=optuna needs cnnlab's `optuna` extra: "
                                   "pip install 'cnnlab[optuna]'")  # fmt: skip
