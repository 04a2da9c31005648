"""benchmarks/xla_profile.py: a traced gradient step's kernels attributed to the named
scopes and phases that produced them (on XLA:CPU's thunks; a GPU's kernels go the same way)."""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import main_runs

sys.path.insert(0, str(main_runs.REPO / "benchmarks"))
import xla_profile  # noqa: E402  pylint: disable=wrong-import-position


def test_category_reads_scope_and_phase():
  assert xla_profile.category("jit(step)/jvp()/visual/dot_general") == ("visual", "forward")
  assert xla_profile.category("jit(step)/transpose(jvp())/adapter/mul") == ("adapter", "backward")
  assert xla_profile.category(
      "jit(step)/transpose(jvp())/checkpoint/rematted_computation/audio/exp") == (
          "audio", "recompute")
  assert xla_profile.category("jit(step)/jvp()/reduce_sum") == ("head+loss", "forward")
  assert xla_profile.category("jit(step)/sqrt") == ("optimizer+metrics", "update")


def _step(w, x):
  def loss(w):
    with jax.named_scope("visual"):
      h = jnp.tanh(x @ w["visual"])
    with jax.named_scope("adapter"):
      h = h + jax.nn.gelu(h @ w["adapter"])
    return jnp.mean(h ** 2)
  grads = jax.grad(loss)(w)
  return jax.tree.map(lambda p, g: p - 0.1 * jnp.sign(g), w, grads)


def test_a_traced_step_is_attributed(tmp_path):
  rng = np.random.default_rng(0)
  w = {k: jnp.asarray(rng.standard_normal((512, 512)), jnp.float32) for k in ("visual", "adapter")}
  x = jnp.asarray(rng.standard_normal((512, 512)), jnp.float32)
  compiled = jax.jit(_step).lower(w, x).compile()
  names = xla_profile.op_names(compiled.as_text())
  assert {xla_profile.category(n) for n in names.values()} >= {
      ("visual", "forward"), ("adapter", "forward"), ("adapter", "backward")}
  profile = xla_profile.trace(lambda: jax.block_until_ready(compiled(w, x)), 3, str(tmp_path))
  by_category, kernels = xla_profile.breakdown(profile, compiled.as_text(), calls=3)
  assert by_category[("visual", "forward")] > 0 and by_category[("adapter", "forward")] > 0
  assert by_category[("visual", "backward")] > 0 and by_category[("adapter", "backward")] > 0
  assert sum(ms for ms, _, _ in kernels) == pytest.approx(sum(by_category.values()))
  assert all(name in names for _, name, _ in kernels[:3])  # the slowest ones are mapped
  table = xla_profile.format_breakdown(by_category, kernels)
  assert table.splitlines()[0].split("|")[1].strip() == "forward" and "adapter" in table
