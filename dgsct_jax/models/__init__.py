"""Flax NNX modules: encoders, DG-SCT adapters and task heads."""
