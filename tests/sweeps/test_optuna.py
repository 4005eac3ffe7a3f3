"""A search with Optuna's TPE: trials selected on validation, the selected one tested once."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

SEARCH = ("experiment=tune_adam", "data=digits", "data.image_size=28", "~data.train_subset", "trainer.epochs=1",
          "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.n_startup_trials=2")  # fmt: skip


@pytest.mark.slow
def test_a_four_trial_search_selects_on_validation_and_tests_the_selected_trial_once(cli, tmp_path):
    sweep = tmp_path / "search"
    cli("-m", *SEARCH, f"hydra.sweep.dir={sweep}")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    assert [p.name for p in trials] == ["0", "1", "2", "3"]
    summaries = [json.loads((p / "summary.json").read_text()) for p in trials]
    for trial, summary in zip(trials, summaries):
        assert summary["test_top1"] is None  # trainer.test=false: no trial read the test split
        assert all(json.loads(line)["split"] != "test" for line in (trial / "metrics.jsonl").read_text().splitlines())
    assert set(results["best_params"]) == {"optimizer.learning_rate", "optimizer.b1", "trainer.batch_size", "l2"}
    assert results["best_value"] == max(s["best_val_top1"] for s in summaries)

    report = [sys.executable, "-m", "cnnlab.cli.report", str(sweep)]
    subprocess.run(report, cwd=REPO, check=True, capture_output=True)
    selected = json.loads((sweep / "selected.json").read_text())
    best = max(range(4), key=lambda i: summaries[i]["best_val_top1"])  # the first of equals, as Optuna's
    assert selected["trial"] == str(best)
    assert {k: float(v) for k, v in selected["overrides"].items() if k in results["best_params"]} == \
        {k: float(v) for k, v in results["best_params"].items()}
    assert f"**{selected['test_top1']:.4f}**" in (sweep / "report.md").read_text()

    # The selected trial's test score is the one its run would have written with trainer.test=true.
    overrides = [f"{k}={v}" for k, v in selected["overrides"].items() if k in results["best_params"]]
    cli(*SEARCH[:5], *overrides, "trainer.test=true", f"hydra.run.dir={tmp_path / 'tested'}")
    tested = json.loads((tmp_path / "tested" / "summary.json").read_text())
    assert tested["best_val_top1"] == summaries[best]["best_val_top1"]
    assert selected["test_top1"] == pytest.approx(tested["test_top1"], abs=1e-9)

    before = (sweep / "selected.json").stat().st_mtime_ns
    subprocess.run(report, cwd=REPO, check=True, capture_output=True)
    assert (sweep / "selected.json").stat().st_mtime_ns == before  # scored once: read back, not scored again
