"""The ablations of the paper (spec §7), as one table of config overrides.

Every task config takes `ablation=<name>` (configs/common.py applies the row):

    --config=configs/ave.py:variant=large,ablation=lavish
    --config=configs/demo.py:ablation=no_spatial

and the task configs' `get_hyper` sweeps the table over seeds
(`python -m dgsct_jax.sweep --config=configs/ave.py:variant=large --root=...`).

A row names config fields by dotted path; a field the task's config lacks
(e.g. an AVE-head switch on another task) is an error that names it.
"""
from dgsct_jax import config_utils

ABLATIONS = {
    # No DG-SCT: frozen encoders + the task head; each stream's final tokens mean-pooled.
    "frozen_baseline": {"model.visual_adapters": False, "model.audio_adapters": False,
                        "model.p1": False, "model.p2": False},
    # LAVisH*: latent tokens + bottleneck adapters with cross-modal projection, no
    # spatial/channel guidance (alpha = beta = 0, mean pooling).
    "lavish": {"model.adapter.channel": False, "model.adapter.spatial": False},
    # w/o C: no channel map M_c (alpha term and the (M_c + 1) pre-scaling).
    "no_channel": {"model.adapter.channel": False},
    # w/o S: no spatial map M_s (beta term); final tokens mean-pooled.
    "no_spatial": {"model.adapter.spatial": False},
    # w/o T: no temporal gating in the AVE head (gamma = 0: temporal_attn's G^a/G^v scaling).
    "no_temporal": {"model.head.gamma": 0.0},
    # w/o latent tokens: no LAVisH latent-token cross-attention inside the adapters.
    "no_latent_tokens": {"model.adapter.latent_tokens": False},
    # A2V only: audio guides visual (vis_adapter_blocks_*); no V2A adapters.
    "a2v_only": {"model.audio_adapters": False},
    # V2A only: visual guides audio (audio_adapter_blocks_*); no A2V adapters.
    "v2a_only": {"model.visual_adapters": False},
    # Adapters around attention only / around the MLP only.
    "p1_only": {"model.p2": False},
    "p2_only": {"model.p1": False},
}


# The paper's ablation table, in its order ("" = the full model).
PAPER_TABLE = ("", "no_spatial", "no_channel", "no_temporal", "a2v_only", "v2a_only", "p1_only",
               "p2_only", "no_latent_tokens", "lavish", "frozen_baseline")


def sweep(hyper, *, seeds, skip=()):
  """The rows of PAPER_TABLE but `skip` × `seeds`, for a config's `get_hyper`
  (dgsct_jax/sweep/hyper.py)."""
  rows = [r for r in PAPER_TABLE if r not in skip]
  return hyper.product([hyper.sweep("ablation", rows), hyper.sweep("seed", seeds)])


def apply(config, name: str):
  """`config` with the overrides of ablation `name` (in place; returned)."""
  if name not in ABLATIONS:
    raise ValueError(f"unknown ablation {name!r}; known: {sorted(ABLATIONS)}")
  for path, value in ABLATIONS[name].items():
    try:
      config_utils.set_field(config, path, value)
    except KeyError:
      raise ValueError(f"ablation {name!r} sets {path}, which this config does not have"
                       ) from None
  return config
