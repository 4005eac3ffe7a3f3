"""The jobs of a multirun side by side: Hydra's Ray and submitit launchers give the basic launcher's results."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

JOBS = ("optimizer.learning_rate=0.001,-1", "trainer.epochs=1", "trainer.batch_size=64")  # the second fails


def summaries(sweep_dir) -> dict[str, dict]:
    """Each finished job's summary.json, less its wall time; each failed job's first error line."""
    found = {}
    for job in sorted(p for p in sweep_dir.iterdir() if p.name.isdigit()):
        if (job / "summary.json").exists():
            found[job.name] = {k: v for k, v in json.loads((job / "summary.json").read_text()).items() if k != "wall_s"}
        else:
            found[job.name] = (job / "error.txt").read_text().strip().splitlines()[-1]
    return found


@pytest.mark.slow
def test_ray_and_submitit_jobs_match_the_basic_launchers_and_a_failed_job_leaves_the_others(cli, tmp_path):
    results = {}
    for launcher in ("basic", "ray", "submitit_local"):
        proc = cli("-m", f"launcher={launcher}", *JOBS, f"hydra.sweep.dir={tmp_path / launcher}", check=False)
        assert proc.returncode != 0, "a multirun with a failed job exits non-zero"  # after every job has run
        results[launcher] = summaries(tmp_path / launcher)
    basic = results["basic"]
    assert set(basic) == {"0", "1"}
    assert basic["0"]["best_val_top1"] > 0.5
    assert "optimizer.learning_rate must be a finite number > 0" in basic["1"]
    assert results["ray"] == basic  # bit for bit: the same program, in another process
    assert results["submitit_local"] == basic
    assert (tmp_path / "submitit_local" / ".submitit").is_dir()  # submitit's own records, beside the jobs

    report = subprocess.run([sys.executable, "-m", "cnnlab.cli.report", str(tmp_path / "ray")], cwd=REPO,
                            capture_output=True, text=True, check=True)  # fmt: skip
    text = (tmp_path / "ray" / "report.md").read_text()
    assert "2 jobs: 1 finished, 1 failed or unfinished." in text, report.stdout
    assert "### 1: failed" in text


def test_the_launchers_take_the_jobs_resources_from_one_place():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("cnnlab.conf", version_base=None):
        ray = compose("config", overrides=["launcher=ray", "launcher.gpus_per_job=0.25"], return_hydra_config=True)
        slurm = compose("config", overrides=["launcher=submitit_slurm", "launcher.cpus_per_job=8",
                                             "launcher.gpus_per_job=1"], return_hydra_config=True)  # fmt: skip
    remote = OmegaConf.to_container(ray.hydra.launcher.ray.remote, resolve=True)
    assert remote == {"num_cpus": 1, "num_gpus": 0.25, "max_calls": 1}  # one job per worker process
    assert ray.hydra.launcher._target_.endswith("RayLauncher")
    assert (slurm.hydra.launcher.cpus_per_task, slurm.hydra.launcher.gpus_per_task) == (8, 1)
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher")
