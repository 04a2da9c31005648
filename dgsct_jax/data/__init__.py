"""Datasets (TFDS builders, the embedded synthetic dataset) and the grain input pipeline."""
