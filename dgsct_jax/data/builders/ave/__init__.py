"""AVE (Tian et al. 2018) TFDS builder; importing registers the `ave` builder."""
from dgsct_jax.data.builders.ave.ave import Ave, read_annotations  # noqa: F401
