"""A minimal stand-in with the AVE model's interface, for trainer tests only.

Frozen `swin`/`htsat` encoders (plain `nnx.Param`, `htsat.bn0` BatchNorm
statistics), a trainable adapter with its own BatchNorm, dropout drawn from
the call's rngs, and the AVE output dict (batch-major). Small enough that a
train step compiles and runs in well under a second on CPU. `StandInAVE` is
the AVE task on this model (`config.task = "standin_model:StandInAVE"`).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from dgsct_jax.models import layers
from dgsct_jax.tasks import base
from dgsct_jax.tasks.ave import task as ave_task


class Encoder(nnx.Module):

  def __init__(self, in_features, dim, *, bn0=False, rngs):
    self.proj = layers.linear(in_features, dim, axes=("embed", "mlp"), rngs=rngs)
    self.bn0 = layers.BatchNorm(in_features) if bn0 else None

  def __call__(self, x, *, train):
    if self.bn0 is not None:
      x = self.bn0(x, use_running_average=not train)
    return jnp.tanh(self.proj(x))


class StandIn(nnx.Module):

  def __init__(self, config, *, rngs):
    dim, classes = config.dim, config.num_classes
    self.swin = Encoder(3 * config.image_size ** 2, dim, rngs=rngs)
    self.htsat = Encoder(config.samples, dim, bn0=True, rngs=rngs)
    self.adapter = layers.mark_trainable(layers.linear(2 * dim, dim, rngs=rngs))
    self.adapter_bn = layers.mark_trainable(layers.BatchNorm(dim))
    self.event = layers.mark_trainable(layers.linear(dim, 1, rngs=rngs))
    self.cas = layers.mark_trainable(layers.linear(dim, classes, rngs=rngs))
    self.cls = layers.mark_trainable(layers.linear(dim, classes, rngs=rngs))
    self.gate = layers.mark_trainable(layers.linear(dim, 1, rngs=rngs))
    self.dropout = config.dropout
    self.encoder_train_mode = config.encoder_train_mode

  def __call__(self, audio, frames, *, deterministic=True, rngs=None):
    b, t = audio.shape[:2]
    enc_train = self.encoder_train_mode and not deterministic
    v = self.swin(frames.reshape(b * t, -1), train=enc_train)
    a = self.htsat(audio.reshape(b * t, -1), train=enc_train)
    h = self.adapter_bn(self.adapter(jnp.concatenate([v, a], -1)),
                        use_running_average=deterministic)
    h = jax.nn.relu(h) + v + a
    if not deterministic and self.dropout:
      keep = jax.random.bernoulli(rngs.dropout(), 1 - self.dropout, h.shape)
      h = jnp.where(keep, h / (1 - self.dropout), 0)
    h = h.reshape(b, t, -1)
    cas = self.cas(h)
    av_score = jax.lax.top_k(jnp.swapaxes(cas, 1, 2), 4)[0].mean(-1)
    return {
        "is_event_scores": self.event(h)[..., 0],
        "event_scores": self.cls(h.max(axis=1)) + 0.3 * av_score,
        "audio_visual_gate": jax.nn.sigmoid(self.gate(h)[..., 0]),
        "av_score": av_score,
    }


class StandInAVE(ave_task.AVE):
  """AVE's losses, metric and batch on the stand-in model (no figure)."""

  def batch_spec(self):
    m = self.config.model
    return {"frames": base.Field((ave_task.NUM_SEGMENTS, 3, m.image_size, m.image_size),
                                 "float32", base.INPUT),
            "audio": base.Field((ave_task.NUM_SEGMENTS, m.samples), "float32", base.INPUT),
            "label": base.Field((ave_task.NUM_SEGMENTS, m.num_classes + 1), "float32",
                                base.TARGET),
            "video_id": base.Field((), "str", base.HOST)}

  def build_model(self, rngs):
    return StandIn(self.config.model, rngs=rngs)

  def figure(self, model, source, workdir):
    return None
