"""TFDS builders (ArrayRecord, TF-free) for the datasets DG-SCT is evaluated on.

Each builder lives in its own package (TFDS needs the module inside a package)
and reads a user-provided `manual_dir` in the official layout, through the
shared machinery of `dgsct_jax.data.records`.
"""
