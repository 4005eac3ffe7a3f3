"""The end of a run: its hyperparameters and results in TensorBoard's HParams view, and with
trainer.analyze=true the analysis directory and its images in TensorBoard, read back from the
event files as TensorBoard reads them (TFRecord framing, Event protos; no TensorFlow)."""

import json
import struct

import pytest
from tensorboardX.proto import event_pb2, plugin_hparams_pb2

from cnnlab.train import run_end


def events(directory):
    """Every Event in the event files under `directory`, in order."""
    found = []
    for path in sorted(directory.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        position = 0
        while position < len(data):  # a record: length (u64), its crc (u32), the bytes, their crc (u32)
            (length,) = struct.unpack("<Q", data[position : position + 8])
            found.append(event_pb2.Event.FromString(data[position + 12 : position + 12 + length]))
            position += 12 + length + 4
    return found


def values(directory):
    """(tag, Summary.Value) of every summary value in the run's TensorBoard directory."""
    return [(value.tag, value) for event in events(directory) if event.HasField("summary")
            for value in event.summary.value]  # fmt: skip


@pytest.fixture(scope="module")
def analyzed_run(cli, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("analyzed_run")
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=1", "trainer.analyze=true")
    return run_dir


def test_trainer_analyze_writes_the_analysis_of_the_tested_weights(analyzed_run):
    report = (analyzed_run / "analysis" / "report.md").read_text()
    summary = json.loads((analyzed_run / "summary.json").read_text())
    assert f"**test top-1: {summary['test_top1']:.4f}**" in report  # the weights summary.json was tested with
    assert "![predictions](predictions.png)" in report and (analyzed_run / "analysis" / "predictions.png").is_file()


def test_the_confusion_matrix_and_the_predictions_are_tensorboard_images(analyzed_run):
    images = {tag: value.image for tag, value in values(analyzed_run / "tensorboard") if value.HasField("image")}
    assert set(images) == set(run_end.IMAGES)
    for image in images.values():
        assert image.encoded_image_string.startswith(b"\x89PNG") and min(image.height, image.width) >= 100


def test_the_hyperparameters_and_results_are_in_the_hparams_view(analyzed_run):
    hparams = [v for tag, v in values(analyzed_run / "tensorboard") if v.metadata.plugin_data.plugin_name == "hparams"]
    plugin = [plugin_hparams_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content) for v in hparams]
    experiment = next(p.experiment for p in plugin if p.HasField("experiment"))
    start = next(p.session_start_info for p in plugin if p.HasField("session_start_info"))
    assert {m.name.tag for m in experiment.metric_infos} == {f"hparam/{k}" for k in run_end.RESULT_KEYS}
    given = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
             for key, value in start.hparams.items()}  # fmt: skip
    assert given["model.name"] == "lenet5" and given["optimizer.name"] == "adam"
    assert given["trainer.epochs"] == 1 and given["trainer.analyze"] is True  # the command line's overrides
    assert not any(key.startswith(("hydra.", "logger.")) for key in given)
    summary = json.loads((analyzed_run / "summary.json").read_text())
    scalars = {tag: v.simple_value for tag, v in values(analyzed_run / "tensorboard") if tag.startswith("hparam/")}
    assert scalars["hparam/test_top1"] == pytest.approx(summary["test_top1"], rel=1e-6)  # float32 in the event
    assert scalars["hparam/best_epoch"] == 1


def test_hparams_take_the_overrides_over_the_config_and_leave_out_hydras_own():
    cfg = {"model": {"name": "lenet5"}, "optimizer": {"name": "adam", "learning_rate": 1e-3}, "seed": 0,
           "trainer": {"batch_size": 32, "epochs": 15}, "schedule": {"name": "constant"}}  # fmt: skip
    overrides = ["optimizer.learning_rate=0.01", "hydra.run.dir=/tmp/x", "logger.progress_bar=false",
                 "+data.classes=[5,6]", "seed=3"]  # fmt: skip
    assert run_end.hparams_of(cfg, overrides) == {
        "model.name": "lenet5", "optimizer.name": "adam", "optimizer.learning_rate": 0.01, "schedule.name": "constant",
        "trainer.batch_size": 32, "trainer.epochs": 15, "seed": 3, "data.classes": "[5, 6]"}  # fmt: skip


def test_results_leave_out_what_the_run_did_not_compute():
    summary = {"test_top1": None, "test_loss": None, "best_val_top1": 0.9, "best_epoch": 4, "epochs_run": 5}
    assert run_end.results_of(summary) == {"hparam/best_val_top1": 0.9, "hparam/best_epoch": 4.0,
                                           "hparam/epochs_run": 5.0}  # fmt: skip
