"""Hydra configs, shipped in the wheel as the package `cnnlab.conf`."""
