"""AVS (sounding-object segmentation on AVSBench S4/MS3): scoring (`task.AVS`); the
metric is `dgsct_jax.metrics.avs`."""
