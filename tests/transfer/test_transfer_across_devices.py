"""Pretrained on a pod, fine-tuned on one device: a checkpoint written on 8 devices is read on 1."""

import json


def test_a_run_trained_on_8_devices_is_fine_tuned_on_1(cli, tmp_path):
    source = tmp_path / "pod"
    cli("parallel.cpu_devices=8", "trainer.epochs=1", f"hydra.run.dir={source}")
    assert json.loads((source / "summary.json").read_text())["device_count"] == 8
    tuned = tmp_path / "tuned"
    # Restored without a template, orbax put each array back on the 8 devices it was saved from:
    # "Topology mismatch detected" on a process that has one.
    proc = cli("transfer=full", f"transfer.from_run={source}", "trainer.epochs=1", f"hydra.run.dir={tuned}")
    assert json.loads((tuned / "summary.json").read_text())["device_count"] == 1
    assert f"pretrained weights: {source / 'checkpoints'}" in (tuned / "train.log").read_text(), proc.stderr[-2000:]
