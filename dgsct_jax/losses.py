"""Losses with PyTorch's numerics (mean reduction), shared by the tasks."""
import jax
import jax.numpy as jnp


def bce_with_logits(logits, target):
  """`nn.BCEWithLogitsLoss()` (mean): max(x, 0) − x·y + log(1 + e^−|x|)."""
  logits = jnp.asarray(logits, jnp.float32)
  per_item = jnp.maximum(logits, 0) - logits * target + jnp.log1p(jnp.exp(-jnp.abs(logits)))
  return per_item.mean()


def bce(probabilities, target):
  """`nn.BCELoss()` (mean), with PyTorch's clamp of the logs at −100."""
  p = jnp.asarray(probabilities, jnp.float32)
  log_p = jnp.maximum(jnp.log(p), -100.0)
  log_1mp = jnp.maximum(jnp.log1p(-p), -100.0)
  return -(target * log_p + (1 - target) * log_1mp).mean()


def cross_entropy(logits, label):
  """`nn.CrossEntropyLoss()` (mean) with integer class labels."""
  log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  return -jnp.take_along_axis(log_probs, label[:, None].astype(jnp.int32), axis=-1).mean()
