"""Hydra experiment presets (`experiment=<name>`), shipped as `cnnlab.conf.experiment`."""
