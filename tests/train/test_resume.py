"""Resuming from checkpoints, through the command line as a user would."""

import json

import numpy as np
import pytest
import orbax.checkpoint as ocp


STEPS_PER_EPOCH = 1077 // 32


def final_params(run_dir) -> list[np.ndarray]:
    """The params of the newest checkpoint, read as saved (no model needed)."""
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    tree = ocp.StandardCheckpointer().restore(run_dir / "checkpoints" / str(steps[-1]) / "state")
    return [np.asarray(x) for x in jax_leaves(tree["params"])]


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def last_metrics(run_dir) -> dict:
    record = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return {k: v for k, v in record.items() if k not in ("wall_s", "images_per_s", "first_call_s")}


def test_sigkill_then_resume_ends_bitwise_where_an_uninterrupted_run_ends(cli, tmp_path):
    args = ["trainer.epochs=3", "checkpoint.every_steps=20"]  # mid-epoch checkpoints carry the iterator state
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    cli(f"hydra.run.dir={straight}", *args)

    saved = cli.kill_after_first_checkpoint(*args, run_dir=killed)
    assert saved and saved[-1] < 3 * STEPS_PER_EPOCH, "the run was killed before it finished"

    resumed = cli(f"hydra.run.dir={killed}", *args)
    assert "resumed from" in resumed.stdout
    assert last_metrics(killed) == last_metrics(straight)
    for a, b in zip(final_params(killed), final_params(straight)):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def straight_three_epochs(cli, tmp_path_factory):
    """An uninterrupted 3-epoch run: what a run resumed from a damaged checkpoint must end as."""
    run_dir = tmp_path_factory.mktemp("straight")
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    return run_dir


def truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def flip_four_bytes(file):
    """The issue's bit flip: 4 bytes changed in the middle of a state blob; the file's size is the same."""
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, named", [(truncate, "damaged"), (flip_four_bytes, "read back other than saved (checksums)")])
def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_previous_one_resumes_bitwise(
        cli, tmp_path, straight_three_epochs, damage, named):  # fmt: skip
    run_dir = tmp_path / "run"
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2")
    latest = run_dir / "checkpoints" / str(2 * STEPS_PER_EPOCH)
    biggest = max((p for p in (latest / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    damage(biggest)

    proc = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    log = proc.stdout + proc.stderr
    assert f"checkpoint at step {2 * STEPS_PER_EPOCH}" in log and named in log, log[-3000:]
    assert f"resumed from {run_dir / 'checkpoints'} at step {STEPS_PER_EPOCH}" in log, log[-3000:]
    assert list((run_dir / "checkpoints").glob(f"{2 * STEPS_PER_EPOCH}.corrupt-*")), "the bad one is kept aside"
    assert last_metrics(run_dir) == last_metrics(straight_three_epochs)
    for a, b in zip(final_params(run_dir), final_params(straight_three_epochs)):
        np.testing.assert_array_equal(a, b)


def test_an_asynchronous_save_keeps_the_progress_of_its_step(tmp_path):
    # The loop moves on right after each save while orbax writes in the background;
    # the checkpoint must hold the progress as it was at the save.
    from cnnlab.train import checkpoint
    from cnnlab.train.progress import Progress

    mngr = checkpoint.manager(tmp_path / "checkpoints", keep_latest=2, asynchronous=True)
    state = {"w": np.arange(4.0)}
    progress = Progress(step=33, iterator={"next_index": 7}, sums=({"loss": 1.0, "count": 2.0},), wall_s=1.5)
    checkpoint.save(mngr, state, progress=progress, normalization={}, config={}, metrics=None)
    progress.iterator["next_index"] = 8  # the record is frozen; a dict inside it is not: the save has its own copy
    mngr.wait_until_finished()
    _, restored = checkpoint.restore(mngr, 33, state)
    assert restored == Progress(step=33, iterator={"next_index": 7}, sums=({"loss": 1.0, "count": 2.0},), wall_s=1.5)
    assert (restored.epoch(10), restored.batch(10)) == (3, 3)  # derived from the step
    mngr.close()


def run_dir_files(run_dir) -> dict:
    """Every file of a run directory but the lock and the log (which gains the refusal line), with its bytes."""
    skip = {".lock", "train.log"}
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name not in skip}  # fmt: skip


def test_a_changed_config_is_refused_and_the_run_directory_stays_as_it_was(cli, tmp_path):
    run_dir = tmp_path / "run"
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2")
    before = run_dir_files(run_dir)
    for change in ("model=mlp", "optimizer=sgd", "trainer.batch_size=64", "data.split.seed=1"):
        proc = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2", change, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1 and "holds a run with another config" in output, output[-2000:]
        assert "Traceback" not in output
        assert run_dir_files(run_dir) == before, f"{change} changed the run directory"
    # The original command still finds its run, whole: it resumes at the end and rewrites the same results.
    again = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2")
    assert "resumed from" in again.stdout + again.stderr
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 2 * STEPS_PER_EPOCH


def test_an_allowed_change_continues_the_run_and_is_logged(cli, tmp_path):
    """checkpoint.allow_changes=[optimizer.learning_rate]: more epochs at a new rate, read from the optimizer state."""
    run_dir = tmp_path / "run"
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=1")
    proc = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2", "optimizer.learning_rate=0.0005",
               "checkpoint.allow_changes=[optimizer.learning_rate]")  # fmt: skip
    assert "resuming" in proc.stdout + proc.stderr and "optimizer.learning_rate: 0.001 -> 0.0005" in proc.stdout + proc.stderr
    train = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]
    assert [r["lr"] for r in train] == pytest.approx([0.001, 0.0005], rel=1e-6)  # float32 in the state


def test_a_second_process_is_refused_while_the_first_completes(cli, data_dir, tmp_path):
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    run_dir = tmp_path / "run"
    env = {**os.environ, "TFDS_DATA_DIR": str(data_dir)}
    # 20 epochs: long enough that the second process (8 s to start) comes while the first trains, even
    # when every program of the first is read back from the compilation cache.
    first = subprocess.Popen([sys.executable, "-m", "cnnlab.train", "logger.progress_bar=false", "trainer.epochs=20",
                              f"hydra.run.dir={run_dir}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 300
    while not (run_dir / "metrics.jsonl").exists() and time.time() < deadline:  # written once the run is claimed
        time.sleep(0.05)
    second = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=20", check=False)
    output = second.stdout + second.stderr
    assert second.returncode == 1 and f"{run_dir} is in use by another cnnlab process (pid {first.pid})" in output
    assert first.wait(timeout=600) == 0, first.stdout.read()[-2000:]
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["split"] for line in lines].count("test") == 1 and len(lines) == 20 * 2 + 1


def test_a_torn_metrics_line_is_dropped_at_resume(cli, tmp_path):
    run_dir, straight = tmp_path / "run", tmp_path / "straight"
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=1")
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 40, "epoch": 2, "spl')  # a kill in the middle of a write
    resumed = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2")
    assert "dropped a torn last line" in resumed.stdout + resumed.stderr
    cli(f"hydra.run.dir={straight}", "trainer.epochs=2")
    assert last_metrics(run_dir) == last_metrics(straight)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 5
