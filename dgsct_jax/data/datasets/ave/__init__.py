"""AVE (Tian et al. 2018); importing registers the `ave` TFDS builder."""
from dgsct_jax.data.datasets.ave.builder import Ave, read_annotations  # noqa: F401
