"""AVVP (audio-visual video parsing on LLP): scoring (`task.AVVP`); the metric is
`dgsct_jax.metrics.avvp`."""
