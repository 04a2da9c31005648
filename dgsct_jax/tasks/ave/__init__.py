"""AVE (supervised audio-visual event localisation): the task (`task.AVE`), its targets
and losses (`losses`) and its attention figure (`figure`); the metric is
`dgsct_jax.metrics.ave`, the model `dgsct_jax.models.ave`."""
