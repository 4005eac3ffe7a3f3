"""Resuming from checkpoints, through the command line as a user would."""

import json

import numpy as np
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
    return {k: v for k, v in record.items() if k not in ("wall_s", "images_per_s")}


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


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(cli, tmp_path):
    run_dir, straight = tmp_path / "run", tmp_path / "straight"
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=2")
    latest = run_dir / "checkpoints" / str(2 * STEPS_PER_EPOCH)
    biggest = max((p for p in latest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])

    proc = cli(f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    log = proc.stdout + proc.stderr
    assert f"checkpoint at step {2 * STEPS_PER_EPOCH}" in log and "unreadable" in log
    assert f"resumed from {run_dir / 'checkpoints'} at step {STEPS_PER_EPOCH}" in log, log[-3000:]
    assert list((run_dir / "checkpoints").glob(f"{2 * STEPS_PER_EPOCH}.corrupt-*")), "the bad one is kept aside"

    cli(f"hydra.run.dir={straight}", "trainer.epochs=3")
    assert last_metrics(run_dir) == last_metrics(straight)


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
