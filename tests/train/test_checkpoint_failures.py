"""A checkpoint that cannot be read, or written, or that holds another model: one message, nothing moved or lost.

Root reads and writes any file whatever its mode; these tests run the command as root without the
capabilities that allow that (`setpriv`), so that `chmod` means what it means for a user."""

import os
import shutil
import subprocess
import sys

import jax.numpy as jnp
import pytest

from cnnlab.train import checkpoint
from cnnlab.train.progress import Progress
from tests.conftest import REPO

STEPS_PER_EPOCH = 1077 // 32
AS_A_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


@pytest.fixture
def train(data_dir):
    if AS_A_USER and not shutil.which("setpriv"):
        pytest.skip("running as root, and setpriv (util-linux) is missing to drop the override of file modes")

    def run(*overrides, as_user=False):
        env = {**os.environ, "TFDS_DATA_DIR": str(data_dir)}
        cmd = [*(AS_A_USER if as_user else []), sys.executable, "-m", "cnnlab.train", "logger.progress_bar=false", *overrides]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)

    return run


def listing(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_an_unreadable_checkpoint_is_retried_then_reported_and_nothing_is_moved(train, tmp_path):
    run_dir = tmp_path / "run"
    assert train(f"hydra.run.dir={run_dir}", "trainer.epochs=2").returncode == 0
    manifest = run_dir / "checkpoints" / str(2 * STEPS_PER_EPOCH) / "state" / "manifest.ocdbt"
    before, metrics = listing(run_dir / "checkpoints"), (run_dir / "metrics.jsonl").read_bytes()
    manifest.chmod(0)  # an NFS or GCS hiccup, standing still

    proc = train(f"hydra.run.dir={run_dir}", "trainer.epochs=3", as_user=True)
    assert proc.returncode == 1
    assert proc.stdout.count("reading again in") == checkpoint.READ_ATTEMPTS - 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"cnnlab-train: the checkpoint at step {2 * STEPS_PER_EPOCH} cannot be read: {manifest}: Permission denied, "
        f"{checkpoint.READ_ATTEMPTS} attempts. Nothing was moved or changed")  # fmt: skip
    assert "Traceback" not in proc.stdout + proc.stderr
    assert listing(run_dir / "checkpoints") == before and (run_dir / "metrics.jsonl").read_bytes() == metrics

    manifest.chmod(0o644)  # access back: the same command resumes where the run was, not from step 0
    proc = train(f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    assert proc.returncode == 0 and f"at step {2 * STEPS_PER_EPOCH} (epoch 3)" in proc.stdout


def test_a_read_only_checkpoint_directory_is_refused_before_a_step_is_trained(train, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints").chmod(0o555)
    proc = train(f"hydra.run.dir={run_dir}", "trainer.epochs=1", as_user=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"cnnlab-train: cannot write checkpoints into {run_dir / 'checkpoints'}: Permission denied. Make it writable")
    assert "Traceback" not in proc.stdout + proc.stderr and "epoch 1/1" not in proc.stdout
    assert not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text()


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KiB file system: room for the run's logs, not for LeNet-5's first checkpoint (1.7 MiB)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip()}): the full-disk case needs one")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_the_run_at_the_save_that_does_not_fit(train, small_disk):
    run_dir = small_disk / "run"
    proc = train(f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"cnnlab-train: no room for the checkpoint of step {STEPS_PER_EPOCH} in {run_dir / 'checkpoints'}: it needs about")
    assert "free space, then rerun the same command to resume" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and "epoch 2/3" not in proc.stdout  # stopped at once
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith(".")] == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's abandoned reads
def test_a_checkpoint_of_another_model_is_refused_and_left_as_it_is(tmp_path):
    mngr = checkpoint.manager(tmp_path / "checkpoints", keep_latest=2, asynchronous=False)
    saved = {"dense": {"kernel": jnp.ones((64, 10)), "bias": jnp.zeros(10)}}
    checkpoint.save(mngr, saved, progress=Progress(step=7), normalization={}, config={}, metrics=None)
    before = listing(tmp_path / "checkpoints")
    other = {"dense": {"kernel": jnp.ones((128, 10)), "bias": jnp.zeros(10)}}  # the model's code changed since
    with pytest.raises(checkpoint.CheckpointError, match=r"holds another model's state \(dense/kernel: saved "
                       r"\(64, 10\) float32, this model \(128, 10\) float32\): it is left as it is"):  # fmt: skip
        checkpoint.restore_latest_good(mngr, other)
    assert listing(tmp_path / "checkpoints") == before
    state, progress = checkpoint.restore_latest_good(mngr, saved)
    assert progress.step == 7
    mngr.close()
