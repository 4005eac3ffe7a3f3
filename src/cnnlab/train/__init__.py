"""The training engine: state, pure steps, checkpoints, the epoch loop.

`python -m cnnlab.train key=value ...` is the same as `cnnlab-train`.
"""
