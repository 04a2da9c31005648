"""The AVS model's own switches on its tiny variant (parity of the full model is
test_dgsct_avs_golden.py): frames resized in the model, HTS-AT trained in S4 only
(converted encoder weights land on its trainable leaves; the trainer differentiates
every trainable leaf), the two subsets' adapters."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dgsct_jax import nnx_utils
from dgsct_jax.models import avs
from dgsct_jax.models import presets
from dgsct_jax.models import resize

B, T = 1, 5


@pytest.fixture(scope="module")
def models():
  """Abstract models (shapes only): what the structure tests need."""
  return {subset: nnx.eval_shape(lambda s=subset: avs.AVSModel(presets.avs("tiny", s),
                                                              rngs=nnx.Rngs(0)))
          for subset in presets.AVS_SUBSETS}


@pytest.fixture(scope="module")
def inputs():
  rng = np.random.default_rng(0)
  audio = jnp.asarray(0.1 * rng.standard_normal((B, T, 32000)), jnp.float32)
  frames = jnp.asarray(rng.standard_normal((B, T, 3, 96, 96)), jnp.float32)
  return audio, frames


def test_s4_trains_hts_at_and_ms3_freezes_it(models):
  for subset, trained in (("s4", True), ("ms3", False)):
    parts = nnx_utils.split(models[subset])
    htsat_trainable = [p for p in nnx_utils.flatten(parts.trainable) if p.startswith("htsat.")]
    htsat_frozen = [p for p in nnx_utils.flatten(parts.frozen) if p.startswith("htsat.")]
    assert bool(htsat_trainable) == trained and bool(htsat_frozen) != trained, subset
    assert not [p for p in nnx_utils.flatten(parts.trainable) if p.startswith("swin.")]
  s4, ms3 = models["s4"].vis_adapter_blocks_p1[0], models["ms3"].vis_adapter_blocks_p1[0]
  assert s4.config.guide_alignment == "resize" and not hasattr(s4, "conv_adapter")
  assert ms3.config.guide_alignment == "token_mix" and hasattr(ms3, "conv_adapter")
  assert (s4.config.alpha, s4.config.beta, ms3.config.alpha, ms3.config.beta) == (
      0.3, 0.05, 0.2, 0.1)
  assert ms3.down_sampler.kernel.get_value().shape[-1] == 32 // 2  # r = 2 at width 32


def test_converted_audio_encoder_initialises_trainable_hts_at(models):
  parts = nnx_utils.split(models["s4"])
  values = {p[len("htsat."):]: np.full(v.shape, 0.5, np.float32)
            for p, v in nnx_utils.flatten(parts.trainable).items() if p.startswith("htsat.")}
  values.update({p[len("htsat."):]: np.zeros(v.shape, np.float32) for p, v in
                 nnx_utils.flatten(parts.stats).items() if p.startswith("htsat.")})
  loaded = nnx_utils.assign_pretrained(parts, values, "htsat", "test")
  flat = nnx_utils.flatten(loaded.trainable)
  assert all(float(np.asarray(flat[f"htsat.{k}"]).min()) == 0.5 for k in values
             if f"htsat.{k}" in flat)
  with pytest.raises(ValueError, match="htsat.nope: no leaf of the model"):
    nnx_utils.assign_pretrained(parts, {"nope": np.zeros(1)}, "htsat", "test")


def test_frames_resized_in_the_model(models, inputs):
  """The encoder sees the 96² frames bicubic-resized (PyTorch-exact) to the Swin's 64²;
  without `resize_frames` they pass unchanged (and must have the Swin's size). The full
  models' in-model 224² → 192² resize is proven by test_dgsct_avs_golden.py."""
  _, frames = inputs
  images = models["s4"].images(frames)
  expected = resize.resize_2d(frames.reshape(B * T, 3, 96, 96), (64, 64), align_corners=False)
  assert images.shape == (B * T, 3, 64, 64)
  np.testing.assert_array_equal(images, expected)
  config = dict(presets.avs("tiny", "s4"), resize_frames=False)
  plain = nnx.eval_shape(lambda: avs.AVSModel(config, rngs=nnx.Rngs(0)))
  assert plain.images(frames).shape == (B * T, 3, 96, 96)
