"""Sweeps: a config's grid of points (`get_hyper`), run one after another or on a TPU
slice, and their results gathered into tables. `python -m dgsct_jax.sweep --help`."""
