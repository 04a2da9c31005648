"""PyTorch → dgsct_jax weight conversion: strict rename tables, orbax output, parity runs."""
