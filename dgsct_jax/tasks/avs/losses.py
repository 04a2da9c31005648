"""The AVS losses of the reference (`avs_{s4,ms3}/loss.py::IouSemanticAwareLoss`, spec
dgsct_tasks.md §2.3).

S4: `nn.BCELoss` of sigmoid(logits) against the ground-truth mask of each video's first
frame (the only mask of the training split). MS3: the same BCE over all five frames
plus `kl_weight` (0.5) × the audio–masked-visual matching term averaged over the four
TPAVI stages. Per stage, the predicted logits are average-pooled to the stage's grid,
*then* passed through a sigmoid, and weight the ReLU'd TPAVI map; its mean over
positions is the masked visual feature f_v, and with the stage's aligned audio f_a the
term is KL(softmax f_a ‖ softmax f_v) summed (not averaged) over every frame and
channel, without L2 normalisation (`F.kl_div(softmax(f_v).log(), softmax(f_a),
reduction='sum')`; log_softmax here, equal unless the softmax underflows).
"""
import jax
import jax.numpy as jnp

from dgsct_jax import losses as losses_lib
from dgsct_jax.models.heads import avs as avs_head

BCE_FRAMES = ("first", "all")


def _pool_to(logits, size: int):
  """AdaptiveAvgPool2d of (BF, H, W) logits to (BF, size, size); H, W multiples of size."""
  bf, h, w = logits.shape
  if h % size or w % size:
    raise ValueError(f"AVS loss: a {h}x{w} mask does not pool evenly to the {size}x{size} grid")
  return logits.reshape(bf, size, h // size, size, w // size).mean(axis=(2, 4))


def masked_av_kl(outputs: dict) -> jax.Array:
  """The MS3 matching term, averaged over the TPAVI stages."""
  logits = outputs["pred"][..., 0].astype(jnp.float32)                 # (BF, H, W)
  terms = []
  for i in range(1, avs_head.NUM_STAGES + 1):
    v_map = outputs[f"v_map_stage{i}"].astype(jnp.float32)            # (BF, h, w, C)
    audio = outputs[f"a_fea_stage{i}"].astype(jnp.float32)
    audio = audio.reshape(-1, audio.shape[-1])                          # (BF, C)
    weights = jax.nn.sigmoid(_pool_to(logits, v_map.shape[1]))[..., None]
    visual = (v_map * weights).mean(axis=(1, 2))                        # (BF, C)
    p_audio = jax.nn.softmax(audio, axis=-1)
    terms.append(jnp.sum(p_audio * (jnp.log(p_audio) - jax.nn.log_softmax(visual, axis=-1))))
  return sum(terms) / len(terms)


def losses(outputs: dict, masks, *, bce_frames: str = "first", kl_weight: float = 0.0) -> dict:
  """`bce` (frame 1 of each video with bce_frames='first' (S4), every frame with 'all'
  (MS3)), `kl` when kl_weight > 0, and `total`. masks (B, T, H, W) in {0, 1}."""
  if bce_frames not in BCE_FRAMES:
    raise ValueError(f"loss.bce_frames={bce_frames!r}; choose one of {BCE_FRAMES}")
  b, t = masks.shape[:2]
  logits = outputs["pred"][..., 0].reshape(b, t, *masks.shape[2:])
  if bce_frames == "first":
    logits, masks = logits[:, :1], masks[:, :1]
  out = {"bce": losses_lib.bce(jax.nn.sigmoid(logits.astype(jnp.float32)),
                               jnp.asarray(masks, jnp.float32))}
  out["total"] = out["bce"]
  if kl_weight:
    out["kl"] = masked_av_kl(outputs)
    out["total"] = out["total"] + kl_weight * out["kl"]
  return out
