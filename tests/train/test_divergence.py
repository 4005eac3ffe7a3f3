"""A run that explodes while its loss is still finite is stopped by trainer.max_loss / max_grad_norm."""


def test_a_loss_above_max_loss_stops_the_run_with_the_step_and_the_limit(cli, tmp_path):
    # Adam at a rate of 1e4: the loss reaches ~1e26, finite, within the first epoch.
    proc = cli("optimizer=adam", "optimizer.learning_rate=10000", "trainer.epochs=2", "trainer.max_loss=1000",
               f"hydra.run.dir={tmp_path}", check=False)  # fmt: skip
    assert proc.returncode == 1
    message = proc.stderr.strip().splitlines()[-1]
    assert "the mean loss of epoch 1 so far is" in message and "above trainer.max_loss=1000: the run diverges" in message
    assert not (tmp_path / "summary.json").exists()
    assert not any(p.name.isdigit() for p in (tmp_path / "checkpoints").glob("*"))  # stopped before epoch 1's save


def test_a_limit_that_is_not_a_positive_number_is_refused(cli, tmp_path):
    proc = cli("trainer.max_grad_norm=-1", f"hydra.run.dir={tmp_path}", check=False)
    assert proc.returncode == 1
    assert "trainer.max_grad_norm must be a finite number > 0, or null for no limit, got -1" in proc.stderr
