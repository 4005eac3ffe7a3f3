"""cnnlab: a JAX research framework for convolutional networks and their optimizers."""

__version__ = "0.1.0"
