"""AVQA (audio-visual question answering on MUSIC-AVQA): scoring (`task.AVQA`); the
metric is `dgsct_jax.metrics.avqa`."""
