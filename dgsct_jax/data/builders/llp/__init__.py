"""LLP (AVVP) TFDS builder; importing registers the `llp` builder."""
from dgsct_jax.data.builders.llp.llp import SPLIT_SIZES, Llp, read_splits  # noqa: F401
