"""dgsct_jax: DG-SCT audio-visual adapters on frozen Swin-V2 and HTS-AT, in JAX/Flax NNX."""
__version__ = "0.1.0"
