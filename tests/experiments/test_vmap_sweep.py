"""`sweep=vmap`: each variant of the one compiled program ends where its own run ends."""

import json

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
import yaml

from cnnlab.train import checkpoint, loop, parallel, setup, vmap_sweep

# A dropout model with augmentation, momentum under a step-decay schedule and L2:
# every piece of state that a variant must keep apart from the others.
BASE = [
    "model=typical_cnn", "data.image_size=28", "data.train_subset=320", "optimizer=momentum",
    "schedule=step_decay", "schedule.unit=step", "schedule.every=4", "schedule.factor=0.5", "l2=1e-4",
    "augment=light", "trainer.epochs=1", "logger.tensorboard=false",
]  # fmt: skip
RATES, SEEDS = [0.01, 0.05], [0, 3]


def saved_params(run_dir) -> list[np.ndarray]:
    """The params of a run's newest checkpoint, read as saved."""
    steps = sorted(int(p.name) for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit())
    tree = ocp.StandardCheckpointer().restore(run_dir / "checkpoints" / str(steps[-1]) / "state")
    return [np.asarray(x) for x in jax.tree.leaves(tree["params"])]


@pytest.fixture(scope="module")
def sweep(compose, tmp_path_factory):
    """2 rates x 2 seeds on the batches of seed=0, trained in one program."""
    cfg = compose(*BASE, "sweep=vmap", f"sweep.learning_rates={RATES}", f"sweep.seeds={SEEDS}")
    run_dir = tmp_path_factory.mktemp("vmap")
    overrides = [*BASE, "sweep=vmap", f"sweep.learning_rates={RATES}", f"sweep.seeds={SEEDS}"]
    return run_dir, vmap_sweep.run(cfg, run_dir, overrides=overrides)


@pytest.mark.parametrize("rate", [pytest.param(RATES[0], marks=pytest.mark.slow), RATES[1]])
def test_each_variant_equals_a_separate_run(sweep, compose, tmp_path, rate):
    """Variant (η, seed 0) and `cnnlab-train optimizer.learning_rate=η seed=0`: same params, same metrics."""
    run_dir, result = sweep
    index = RATES.index(rate) * len(SEEDS)  # rates outermost; seed 0 first
    loop.run(compose(*BASE, f"optimizer.learning_rate={rate}", "seed=0"), tmp_path)

    separate = saved_params(tmp_path)
    variant = [np.asarray(x) for x in jax.tree.leaves(vmap_sweep.host_params(result.state)[index])]
    assert len(variant) == len(separate) == 8  # 2 convs and 2 dense layers
    for a, b in zip(variant, separate):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    ours = json.loads((run_dir / str(index) / "summary.json").read_text())
    theirs = json.loads((tmp_path / "summary.json").read_text())
    assert ours["steps"] == theirs["steps"] == 320 // 32
    assert ours["test_top1"] == pytest.approx(theirs["test_top1"], abs=1 / 360 + 1e-9)  # at most one image flips
    rows = [json.loads(line) for line in (run_dir / str(index) / "metrics.jsonl").read_text().splitlines()]
    their_rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in rows] == [(r["epoch"], r["split"]) for r in their_rows]
    for r, t in zip(rows, their_rows):
        assert r["loss"] == pytest.approx(t["loss"], rel=1e-4)
        assert r["lr"] == pytest.approx(t["lr"], rel=1e-6)
    assert rows[0]["lr"] == pytest.approx(rate * 0.25)  # step 9's rate, halved at steps 4 and 8


def test_seeds_and_rates_give_distinct_variants(sweep):
    _, result = sweep
    params = [jax.tree.leaves(p)[0] for p in vmap_sweep.host_params(result.state)]
    assert len(params) == len(RATES) * len(SEEDS)
    for i in range(len(params)):
        for j in range(i + 1, len(params)):
            assert not np.allclose(params[i], params[j]), (i, j)


def test_variant_directories_read_like_multirun_jobs(sweep):
    run_dir, _ = sweep
    overrides = [yaml.safe_load((run_dir / str(i) / ".hydra" / "overrides.yaml").read_text()) for i in range(4)]
    assert overrides[3][-2:] == ["optimizer.learning_rate=0.05", "seed=3"]
    assert not any(o.startswith("sweep") for o in overrides[3])
    config = yaml.safe_load((run_dir / "3" / ".hydra" / "config.yaml").read_text())
    assert config["optimizer"]["learning_rate"] == 0.05 and config["seed"] == 3
    report = (run_dir / "report.md").read_text()
    assert "| optimizer.learning_rate | seed |" in report
    assert "## Mean ± std over seeds" in report
    assert (run_dir / "report.png").stat().st_size > 10_000


def test_a_diverging_variant_fails_alone(compose, tmp_path):
    """A rate that blows up is recorded as failed; the other variant finishes."""
    cfg = compose("data.train_subset=160", "trainer.epochs=1", "logger.tensorboard=false", "optimizer=sgd",
                  "sweep=vmap", "sweep.learning_rates=[0.01,1e6]")  # fmt: skip
    result = vmap_sweep.run(cfg, tmp_path)
    assert len(result.summaries) == 1
    assert (tmp_path / "0" / "summary.json").exists() and not (tmp_path / "1" / "summary.json").exists()
    assert "non-finite loss at step" in (tmp_path / "1" / "error.txt").read_text()
    assert "**failed**: FloatingPointError: non-finite loss" in (tmp_path / "report.md").read_text()


def test_early_stopping_scores_each_variant_on_its_own_best_epoch(compose, tmp_path):
    """Each variant stops on its own record, and its test score is that of its own best epoch."""
    # min_delta=10: no epoch after the first improves val loss by 10, so every variant stops after epoch 2
    # and is tested with its epoch-1 weights; the rates differ, so the variants' epoch-1 weights differ too.
    cfg = compose("data.train_subset=320", "trainer.epochs=5", "logger.tensorboard=false", "optimizer=sgd",
                  "trainer.early_stopping.monitor=val_loss", "trainer.early_stopping.patience=1",
                  "trainer.early_stopping.min_delta=10", "sweep=vmap", "sweep.learning_rates=[0.01,0.1]")  # fmt: skip
    result = vmap_sweep.run(cfg, tmp_path)
    assert [(s["stopped_early"], s["best_epoch"], s["epochs_run"]) for s in result.summaries] == [(True, 1, 2)] * 2

    # Each variant's epoch-1 weights, evaluated apart, give its summary's test top-1.
    par = parallel.create("jit")
    job = setup.build(cfg, par, variants=vmap_sweep.variants(cfg))
    mngr = checkpoint.manager(tmp_path / "checkpoints", keep_latest=2, variants=2)
    steps_per_epoch = 320 // 32
    assert steps_per_epoch in mngr.all_steps(), "every variant's best checkpoint is kept"
    epoch1, _ = checkpoint.restore(mngr, steps_per_epoch, job.init(par))
    epoch2, _ = checkpoint.restore(mngr, 2 * steps_per_epoch, job.init(par))
    at_best = [m["top1"] for m in loop.evaluate(job, par, epoch1, "test")]
    at_last = [m["top1"] for m in loop.evaluate(job, par, epoch2, "test")]
    assert [s["test_top1"] for s in result.summaries] == pytest.approx(at_best, abs=1e-9)
    assert at_best != at_last


def test_a_killed_sweep_resumes_bitwise(cli, tmp_path):
    """SIGKILL after the first checkpoint, then the same command: every variant's summary and
    parameters are bitwise those of an uninterrupted sweep."""
    args = ["data.train_subset=320", "trainer.epochs=3", "checkpoint.every_steps=4", "optimizer=momentum",
            "augment=light", "sweep=vmap", "sweep.learning_rates=[0.01,0.05]", "sweep.seeds=[0,1]",
            "logger.tensorboard=false"]  # fmt: skip
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    cli(f"hydra.run.dir={straight}", *args)

    saved = cli.kill_after_first_checkpoint(*args, run_dir=killed)
    assert saved and saved[-1] < 3 * (320 // 32), "the sweep was killed before it finished"

    resumed = cli(f"hydra.run.dir={killed}", *args)
    assert "resumed from" in resumed.stdout + resumed.stderr
    unclocked = lambda s: {k: v for k, v in s.items() if k != "wall_s"}  # noqa: E731
    for i in range(4):
        ours, theirs = (json.loads((d / str(i) / "summary.json").read_text()) for d in (killed, straight))
        assert unclocked(ours) == unclocked(theirs)
    for a, b in zip(saved_params(killed), saved_params(straight)):
        assert a.shape[0] == 4  # every leaf carries the variants' axis
        np.testing.assert_array_equal(a, b)
