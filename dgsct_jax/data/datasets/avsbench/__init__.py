"""AVSBench-object (S4, MS3); importing registers the `avsbench` TFDS builder."""
from dgsct_jax.data.datasets.avsbench.builder import (  # noqa: F401
    Avsbench, MetaRow, read_meta)
