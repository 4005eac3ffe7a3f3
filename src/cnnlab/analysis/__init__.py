"""Understanding a trained run: where it fails and what it learned (`cnnlab-analyze`, `cnnlab-predict`).

    from cnnlab import analysis
    run = analysis.load("runs/<date>_<time>")            # config, data split, model, weights of the run
    predictions = analysis.predict(run, "test")          # (N, classes) probabilities, true labels
    analysis.write(run, "test", run.directory / "analysis")

Modules: run.py (reading a run back), evaluate.py (predictions), metrics.py
(confusion, per-class scores, errors), activations.py (kernels, feature maps,
saliency), figures.py, report.py (the analysis directory).
"""

from cnnlab.analysis.evaluate import Predictions, predict
from cnnlab.analysis.report import write
from cnnlab.analysis.run import RunDirError, TrainedRun, load

__all__ = ["Predictions", "RunDirError", "TrainedRun", "load", "predict", "write"]
