"""Random initialisers that compile one XLA program per power-of-two size, not per shape.

A fresh model is built eagerly (train_state.init_parts), and eagerly every `jax.random`
draw and every scaling of it is an XLA program compiled for its shape: ~200 programs for
the tiny DG-SCT, 0.1–0.2 s of XLA:CPU compile each, most of a run's start. With JAX's
partitionable threefry (its default), element i of a draw depends only on its flat index
i, so a draw of shape s equals the first prod(s) values of a flat draw of any larger
size. These initialisers draw flat at the next power of two and cut, reshape and scale on
the host: the same values as `jax.random` / `jax.nn.initializers` give, from ~20 programs
(zeros and ones are made on the host).
Under a trace (`nnx.eval_shape`, `jit`) they draw the shape itself.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

_SAMPLERS = {
    "uniform": lambda key, shape, dtype, lo, hi: jax.random.uniform(key, shape, dtype, lo, hi),
    "normal": lambda key, shape, dtype: jax.random.normal(key, shape, dtype),
    "truncated_normal": lambda key, shape, dtype, lo, hi: jax.random.truncated_normal(
        key, lo, hi, shape, dtype),
}


def _draw(sampler: str, key, shape, dtype, *args):
  """jax.random.<sampler>(key, shape, dtype, *args): a numpy array when drawn eagerly
  (flat, at the next power-of-two size), else the traced draw."""
  draw = _SAMPLERS[sampler]
  if isinstance(key, jax.core.Tracer) or not jax.config.jax_threefry_partitionable:
    return draw(key, shape, dtype, *args)
  n = math.prod(shape)
  flat = draw(key, (1 << max(n - 1, 0).bit_length(),), dtype, *args)
  return np.asarray(flat)[:n].reshape(shape)


def _device(values):
  """A host draw on the default device (`jax.device_put`: `jnp.asarray` compiles a copy
  program per shape)."""
  return jax.device_put(values) if isinstance(values, np.ndarray) else values


def _scale(values, factor):
  """`values * factor` in the values' dtype, as jax multiplies them."""
  if isinstance(values, np.ndarray):
    return _device(values * np.asarray(factor, values.dtype))
  return values * jnp.asarray(factor, values.dtype)


def uniform(key, shape, dtype=jnp.float32, minval=0.0, maxval=1.0):
  """`jax.random.uniform`."""
  return _device(_draw("uniform", key, tuple(shape), dtype, minval, maxval))


def normal(key, shape, dtype=jnp.float32):
  """`jax.random.normal`."""
  return _device(_draw("normal", key, tuple(shape), dtype))


def truncated_normal(stddev: float, lower: float, upper: float):
  """`jax.nn.initializers.truncated_normal(stddev, lower=..., upper=...)`."""
  def init(key, shape, dtype=jnp.float32):
    return _scale(_draw("truncated_normal", key, tuple(shape), dtype, lower, upper),
                  np.float32(stddev).astype(dtype))
  return init


def variance_scaling_uniform(scale: float, mode: str):
  """`jax.nn.initializers.variance_scaling(scale, mode, 'uniform')` (mode 'fan_in' or
  'fan_avg'; the input axis is -2, the output axis -1, the rest receptive field)."""
  def init(key, shape, dtype=jnp.float32):
    shape = tuple(shape)
    receptive = math.prod(shape) / shape[-2] / shape[-1]
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    denominator = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
    variance = np.asarray(scale / denominator, dtype)
    return _scale(_draw("uniform", key, shape, dtype, -1.0, 1.0),
                  np.sqrt(np.asarray(3, dtype) * variance))
  return init


def zeros(key, shape, dtype=jnp.float32):
  """`jax.nn.initializers.zeros`, made on the host (no program per shape)."""
  del key
  return jax.device_put(np.zeros(shape, dtype))


def ones(key, shape, dtype=jnp.float32):
  """`jax.nn.initializers.ones`, made on the host (no program per shape)."""
  del key
  return jax.device_put(np.ones(shape, dtype))
