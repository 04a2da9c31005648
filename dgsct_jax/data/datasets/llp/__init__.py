"""LLP (AVVP); importing registers the `llp` TFDS builder."""
from dgsct_jax.data.datasets.llp.builder import SPLIT_SIZES, Llp, read_splits  # noqa: F401
