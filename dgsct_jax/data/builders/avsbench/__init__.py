"""AVSBench-object (S4, MS3) TFDS builder; importing registers the `avsbench` builder."""
from dgsct_jax.data.builders.avsbench.avsbench import (  # noqa: F401
    Avsbench, MetaRow, read_meta)
