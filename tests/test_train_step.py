"""The jitted train step: sharded (8 virtual devices, DP and DP+FSDP) == 1 device,
gradients and optimizer state for the trainable part only, frozen weights untouched
and not donated; the optimizer's schedule, per-group lr and both accumulation modes; the
step's norms and random stream."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from flax import nnx

import trainer_configs
from dgsct_jax import input_pipeline
from dgsct_jax import nnx_utils
from dgsct_jax import optim as optim_lib
from dgsct_jax import sharding as sharding_lib
from dgsct_jax import steps as steps_lib
from dgsct_jax import tasks
from dgsct_jax import train_state
from dgsct_jax.models import layers

STEPS = 3


def _batches(config, n):
  source = input_pipeline.get_source(config, "train")
  it = input_pipeline.train_iterator(config, source)
  return [next(it) for _ in range(n)]


def _global(task, batch, layout):
  return input_pipeline.to_global(batch, task.batch_spec(), steps_lib.train_fields(task),
                                  layout.batch_sh)


def _setup(config, devices):
  task = tasks.for_config(config)
  mesh = sharding_lib.make_mesh(config.mesh, devices)
  layout = train_state.make_layout(config, task, mesh)
  return task, layout, train_state.init_parts(config, task, layout)


def _run(config, devices, batches):
  task, layout, parts = _setup(config, devices)
  frozen = train_state.place_frozen(config, parts.frozen, layout)
  tx, schedule = optim_lib.make_optimizer(config.optim, parts.trainable, batches_per_epoch=4)
  opt_sh = train_state.opt_shardings(tx, jax.eval_shape(tx.init, parts.trainable), layout)
  state = train_state.init_state(config, parts, tx, train_state.state_shardings(layout, opt_sh))
  step = steps_lib.make_train_step(config, task, layout, tx, schedule, opt_sh)
  losses = []
  for batch in batches:
    state, metrics = step(state, frozen, _global(task, batch, layout))
    losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state), frozen, parts, layout


def _adam(state) -> optax.ScaleByAdamState:
  adam = [s for s in jax.tree.leaves(state["opt_state"], is_leaf=lambda x: isinstance(
      x, optax.ScaleByAdamState)) if isinstance(s, optax.ScaleByAdamState)]
  assert len(adam) == 1
  return adam[0]


@pytest.fixture(scope="module")
def single_device():
  config = trainer_configs.standin_config(**{"mesh": (("data", 1), ("fsdp", 1), ("model", 1))})
  batches = _batches(config, STEPS)
  return batches, _run(config, jax.devices()[:1], batches)


@pytest.mark.parametrize("mesh,fsdp", [((("data", -1), ("fsdp", 1), ("model", 1)), False),
                                       ((("data", 2), ("fsdp", 4), ("model", 1)), True)])
def test_sharded_step_matches_single_device(single_device, mesh, fsdp):
  batches, (losses1, state1, *_) = single_device
  config = trainer_configs.standin_config(mesh=mesh, fsdp_frozen=fsdp, fsdp_min_size_mb=0.0)
  losses8, state8, frozen8, _, layout = _run(config, jax.devices(), batches)
  assert len(jax.devices()) == 8
  assert layout.batch_sh.spec[0] in ("data", ("data", "fsdp"))
  if fsdp:
    specs = [s.spec for s in jax.tree.leaves(layout.frozen_sh)]
    assert any("fsdp" in tuple(spec) for spec in specs), specs
    assert any("fsdp" in tuple(x.sharding.spec) for x in jax.tree.leaves(frozen8))
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5, atol=1e-6)
  # Adam's first moments are (decayed sums of) the gradients: they must agree closely. The
  # weights only to within Adam's step (lr per update): where a gradient is ~0, m/sqrt(v)
  # turns reduction-order noise into a full-size step of either sign.
  mu8, mu1 = (_adam(s).mu for s in (state8, state1))
  for a, b in zip(jax.tree.leaves(mu8), jax.tree.leaves(mu1)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)
  for a, b in zip(jax.tree.leaves(state8["trainable"]), jax.tree.leaves(state1["trainable"])):
    np.testing.assert_allclose(a, b, rtol=0, atol=STEPS * config.optim.lr)
  assert losses1[0] != losses1[-1]  # the step did change the weights


def test_only_trainable_is_optimised_and_frozen_is_untouched(single_device):
  _, (_, state, frozen, parts, _) = single_device
  trainable_paths = set(nnx_utils.flatten(parts.trainable))
  assert trainable_paths and all(p.split(".")[0] in ("adapter", "adapter_bn", "event", "cas",
                                                     "cls", "gate") for p in trainable_paths)
  frozen_paths = set(nnx_utils.flatten(parts.frozen))
  assert {"swin.proj.kernel", "htsat.proj.kernel"} <= frozen_paths
  assert not trainable_paths & frozen_paths
  # Adam moments exist for trainable leaves only.
  assert set(nnx_utils.flatten(_adam(state).mu)) == trainable_paths
  # Frozen arrays were neither donated nor changed; BN statistics did change (train mode).
  for x, y in zip(jax.tree.leaves(frozen), jax.tree.leaves(parts.frozen)):
    assert not x.is_deleted()
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  bn0 = state["stats"]["htsat"]["bn0"]["mean"]
  assert np.abs(bn0).max() > 0


def test_state_is_donated_and_frozen_is_not():
  """Every train-state buffer is donated (aliased to an output); no frozen one is."""
  config = trainer_configs.standin_config()
  task, layout, parts = _setup(config, jax.devices())
  tx, schedule = optim_lib.make_optimizer(config.optim, parts.trainable, batches_per_epoch=4)
  state = train_state.init_state(config, parts, tx)
  opt_sh = train_state.opt_shardings(tx, jax.eval_shape(tx.init, parts.trainable), layout)
  step = steps_lib.make_train_step(config, task, layout, tx, schedule, opt_sh)
  batch = _global(task, _batches(config, 1)[0], layout)
  text = step.lower(state, parts.frozen, batch).as_text()
  # Frozen inputs are not donated (no aliasing to an output); trainable ones are.
  n_frozen = len(jax.tree.leaves(parts.frozen))
  assert text.count("tf.aliasing_output") == len(jax.tree.leaves(state))
  assert n_frozen > 0


# ----------------------------------------------------------------------------
# Optimizer: schedule, groups, accumulation (no model needed)
# ----------------------------------------------------------------------------

def _optim(**overrides):
  c = ConfigDict(dict(name="adam", b1=0.9, b2=0.999, eps=1e-8, lr=5e-4, lr_mults=(),
                      schedule=dict(kind="step", unit="epoch", every=3, gamma=0.35, warmup=0,
                                    total=0),
                      accum_steps=1, accum_mode="sum"))
  c.update(overrides)
  return c


def test_steplr_in_epochs_matches_torch_steplr():
  sched = optim_lib.make_schedule(_optim(), 209.0)
  for epoch in range(10):
    for count in (epoch * 209, epoch * 209 + 208):
      np.testing.assert_allclose(sched(jnp.asarray(count)), 5e-4 * 0.35 ** (epoch // 3),
                                 rtol=1e-6)


def _grads(k):
  rng = np.random.default_rng(k)
  return {"a": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
          "b": {"c": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32)}}


def _apply(tx, params, grads_seq):
  state = tx.init(params)
  for g in grads_seq:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_true_accumulation_is_adam_on_the_mean_gradient():
  params = jax.tree.map(jnp.zeros_like, _grads(0))
  grads = [_grads(i) for i in range(4)]
  tx, _ = optim_lib.make_optimizer(_optim(accum_steps=2, accum_mode="sum"), params,
                                   batches_per_epoch=4)
  got = _apply(tx, params, grads)
  plain, _ = optim_lib.make_optimizer(_optim(schedule=dict(
      kind="step", unit="epoch", every=3, gamma=0.35, warmup=0, total=0)), params,
                                      batches_per_epoch=2)
  mean = [jax.tree.map(lambda x, y: (x + y) / 2, grads[0], grads[1]),
          jax.tree.map(lambda x, y: (x + y) / 2, grads[2], grads[3])]
  want = _apply(plain, params, mean)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_reference_accumulation_discards_every_other_batch():
  params = jax.tree.map(jnp.zeros_like, _grads(0))
  grads = [_grads(i) for i in range(5)]  # one epoch of 5 batches: updates after 2, 4 and 5
  tx, _ = optim_lib.make_optimizer(_optim(accum_steps=2, accum_mode="discard"), params,
                                   batches_per_epoch=5)
  got = _apply(tx, params, grads)
  plain, _ = optim_lib.make_optimizer(_optim(), params, batches_per_epoch=3)
  want = _apply(plain, params, [grads[1], grads[3], grads[4]])
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  assert optim_lib.updates_per_epoch(418, 2, "discard") == 209


def test_per_group_learning_rates():
  params = jax.tree.map(jnp.zeros_like, _grads(0))
  grads = [_grads(1)]
  tx, _ = optim_lib.make_optimizer(_optim(lr_mults=((r"b\..*", 0.01),)), params,
                                   batches_per_epoch=1)
  got = _apply(tx, params, grads)
  ref, _ = optim_lib.make_optimizer(_optim(), params, batches_per_epoch=1)
  want = _apply(ref, params, grads)
  np.testing.assert_allclose(got["a"], want["a"], rtol=1e-6)
  np.testing.assert_allclose(got["b"]["c"], 0.01 * want["b"]["c"], rtol=1e-5)


def test_bad_optimizer_settings_fail_with_the_field_name():
  params = _grads(0)
  with pytest.raises(ValueError, match="accum_mode"):
    optim_lib.make_optimizer(_optim(accum_steps=2, accum_mode="mean"), params,
                             batches_per_epoch=4)
  with pytest.raises(ValueError, match="schedule.kind"):
    optim_lib.make_schedule(_optim(schedule=dict(kind="linear", unit="step", every=1,
                                                 gamma=1.0, warmup=0, total=0)), 1.0)(
                                                     jnp.asarray(0))


def test_sharding_rules_are_validated():
  mesh = sharding_lib.make_mesh((("data", 2), ("fsdp", 4)), jax.devices())
  with pytest.raises(ValueError, match="not an axis of the mesh"):
    sharding_lib.validate_rules((("batch", "tensor"),), mesh)
  with pytest.raises(ValueError, match="two rules"):
    sharding_lib.validate_rules((("batch", "data"), ("batch", "fsdp")), mesh)
  table = sharding_lib.validate_rules((("batch", "data"), ("embed", "fsdp"), ("mlp", "fsdp")),
                                      mesh)
  with pytest.raises(ValueError, match="used twice"):
    sharding_lib.logical_to_spec(("embed", "mlp"), (8, 8), table, mesh, "w")
  with pytest.raises(ValueError, match="not divisible"):
    sharding_lib.logical_to_spec(("embed",), (6,), table, mesh, "w")
  assert sharding_lib.logical_to_spec(("embed", "other"), (8, 3), table, mesh, "w") == (
      jax.sharding.PartitionSpec("fsdp", None))
  with pytest.raises(ValueError, match="needs 8 devices"):
    sharding_lib.make_mesh((("data", 4), ("fsdp", 2)), jax.devices()[:4])


def test_bfloat16_compute_tracks_float32(single_device):
  """compute_dtype=bfloat16: frozen weights stored in bf16, trainable master weights f32."""
  batches, (losses32, *_) = single_device
  config = trainer_configs.standin_config(compute_dtype="bfloat16",
                                          mesh=(("data", 1), ("fsdp", 1), ("model", 1)))
  losses16, state, frozen, *_ = _run(config, jax.devices()[:1], batches)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state["trainable"]))
  assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(frozen))
  np.testing.assert_allclose(losses16, losses32, rtol=3e-2)


def test_global_norm_is_optax_s():
  rng = np.random.default_rng(0)
  tree = {"a": rng.standard_normal((3, 4)).astype(np.float32),
          "b": [rng.standard_normal(7).astype(np.float32), np.float32(2.5)]}
  np.testing.assert_allclose(jax.jit(optim_lib.global_norm)(tree), optax.global_norm(tree),
                             rtol=1e-6)
  assert optim_lib.global_norm({}) == 0


@pytest.mark.parametrize("key", [3, jax.random.key(3), jax.random.key_data(jax.random.key(3))],
                         ids=["int", "typed", "raw"])
def test_dropout_stream_draws_the_keys_of_nnx_rngs(key):
  """The forward pass's stream gives nnx.Rngs(key).dropout()'s keys, eagerly and traced,
  without an RNG-count variable."""
  def draws(rngs):
    return jnp.stack([jax.random.key_data(rngs.dropout()) for _ in range(3)])
  want = draws(nnx.Rngs(key))
  np.testing.assert_array_equal(draws(layers.DropoutStream(key)), want)
  traced = jax.jit(lambda k: draws(layers.DropoutStream(k)))(key) if not isinstance(key, int) \
      else draws(layers.DropoutStream(key))
  np.testing.assert_array_equal(traced, want)
  assert len(set(map(tuple, np.asarray(want).tolist()))) == 3
