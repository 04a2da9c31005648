"""dgsct_jax/models/initializers.py: the same values as jax.random and jax.nn.initializers,
eagerly and under a trace, from one compiled program per power-of-two size."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dgsct_jax.models import initializers

SHAPES = [(5,), (3, 7), (2, 3, 5, 17)]


def _pairs():
  return [
      (initializers.uniform, lambda k, s, d: jax.random.uniform(k, s, d, -0.3, 0.7),
       lambda k, s, d: initializers.uniform(k, s, d, -0.3, 0.7)),
      (initializers.normal, jax.random.normal, initializers.normal),
      ("trunc", nnx.initializers.truncated_normal(0.02, lower=-100.0, upper=100.0),
       initializers.truncated_normal(0.02, -100.0, 100.0)),
      ("fan_in", nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
       initializers.variance_scaling_uniform(1 / 3, "fan_in")),
      ("xavier", nnx.initializers.xavier_uniform(),
       initializers.variance_scaling_uniform(1.0, "fan_avg")),
  ]


@pytest.mark.parametrize("shape", SHAPES)
def test_eager_and_traced_draws_equal_jax(shape):
  key = jax.random.key(7)
  for name, want, got in _pairs():
    if len(shape) < 2 and name in ("fan_in", "xavier"):
      continue
    eager = got(key, shape, jnp.float32)
    assert isinstance(eager, jax.Array) and eager.shape == shape, name
    assert eager.dtype == jnp.float32, name
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(want(key, shape, jnp.float32)),
                                  err_msg=str(name))
    # Inside a jit XLA may fuse the scaling (one rounding less): compare with jax's, jitted.
    in_jit = lambda f: jax.jit(lambda k: f(k, shape, jnp.float32))(key)  # noqa: B023,E731
    np.testing.assert_array_equal(np.asarray(in_jit(got)), np.asarray(in_jit(want)),
                                  err_msg=str(name))


def test_eager_draws_compile_per_power_of_two_size(caplog):
  """Shapes of 33..64 elements share one program (jax.random alone: one per shape)."""
  key = jax.random.key(0)
  init = initializers.variance_scaling_uniform(1.0, "fan_in")
  init(key, (8, 8))  # compiled once here
  with jax.log_compiles(), caplog.at_level(logging.WARNING, logger="jax"):
    for shape in [(5, 7), (6, 9), (2, 2, 16), (3, 13)]:
      init(key, shape)
  assert not [r for r in caplog.records if r.getMessage().startswith("Compiling")]
