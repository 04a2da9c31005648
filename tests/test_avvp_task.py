"""AVVP as a Task: the losses against PyTorch's, the metric rows and baseline, log-mel mixup,
and predictions round-tripping through the scoring CLI's reader."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from configs import avvp as avvp_config
from dgsct_jax import tasks
from dgsct_jax.metrics import avvp as avvp_metrics
from dgsct_jax.models import backbone
from dgsct_jax.models import presets
from dgsct_jax.tasks.avvp import losses as avvp_losses


def _outputs(rng, b=4, c=25):
  return {"global_prob": rng.uniform(0, 1, (b, c)), "a_prob": rng.uniform(0, 1, (b, c)),
          "v_prob": rng.uniform(0, 1, (b, c)), "aud_cls_prob": rng.standard_normal((c, c)),
          "vis_cls_prob": rng.standard_normal((c, c))}


def test_losses_equal_the_reference_training_step():
  """`main.py::train`'s loss, computed with torch on the same outputs."""
  rng = np.random.default_rng(0)
  out = {k: v.astype(np.float32) for k, v in _outputs(rng).items()}
  out["global_prob"][0, :3] = [0.0, 1.0, 1e-9]  # the clamp matters here
  weak = (rng.random((4, 25)) < 0.1).astype(np.float32)
  ours = avvp_losses.losses(out, weak)

  t = {k: torch.tensor(v) for k, v in out.items()}
  target = torch.tensor(weak)
  for k in ("global_prob", "a_prob", "v_prob"):
    t[k] = t[k].clamp(min=1e-7, max=1 - 1e-7)
  bce, ce = torch.nn.BCELoss(), torch.nn.CrossEntropyLoss()
  cls_target = torch.arange(0, 25).long()
  want = {"av": bce(t["global_prob"], target), "a": bce(t["a_prob"], target),
          "v": bce(t["v_prob"], 0.9 * target + 0.1 * 0.5),
          "cls_aud": ce(t["aud_cls_prob"], cls_target),
          "cls_vis": ce(t["vis_cls_prob"], cls_target)}
  want["total"] = sum(want.values())
  for k, v in want.items():
    np.testing.assert_allclose(float(ours[k]), float(v), rtol=2e-6, err_msg=k)


def test_losses_have_no_gradient_outside_the_clamp():
  out = {k: jnp.asarray(v, jnp.float32) for k, v in _outputs(np.random.default_rng(1)).items()}
  out["global_prob"] = out["global_prob"].at[0, 0].set(1.0)
  grad = jax.grad(lambda g: avvp_losses.losses(dict(out, global_prob=g), jnp.ones((4, 25)))
                  ["total"])(out["global_prob"])
  assert grad[0, 0] == 0 and grad[0, 1] != 0


def test_metric_accepts_frame_scores_up_to_two_and_reports_the_baseline():
  rng = np.random.default_rng(2)
  gt_a = (rng.random((6, 4, 10)) < 0.3).astype(np.uint8)
  gt_v = (rng.random((6, 4, 10)) < 0.3).astype(np.uint8)
  metrics = avvp_metrics.AVVPMetrics(num_classes=4)
  frame = rng.uniform(0, 2, (6, 10, 4))
  metrics.update({"global_prob": rng.uniform(0, 1, (6, 4)), "a_frame_prob": frame,
                  "v_frame_prob": frame, "gt_a": gt_a, "gt_v": gt_v})
  result = metrics.result()
  # The baseline: the class present in most videos, everywhere, in both modalities.
  top = int((gt_a | gt_v).any(-1).sum(0).argmax())
  pred = np.zeros_like(gt_a)
  pred[:, top] = 1
  want = avvp_metrics.avvp_scores(pred, pred, gt_a, gt_v)
  assert {k: result[f"baseline_{k}"] for k in want} == want
  with pytest.raises(ValueError, match=r"outside \[0, 2\]"):
    avvp_metrics.AVVPMetrics(num_classes=4).update(
        {"global_prob": np.zeros((1, 4)), "a_frame_prob": np.full((1, 10, 4), 2.5),
         "v_frame_prob": np.zeros((1, 10, 4)), "gt_a": gt_a[:1], "gt_v": gt_v[:1]})


def test_predictions_jsonl_is_read_by_the_scoring_reader(tmp_path):
  """The trainer's rows (prediction_rows) score to the same numbers through read_predictions."""
  task = tasks.get("avvp")(avvp_config.get_config("variant=tiny,data=random"))
  rng = np.random.default_rng(3)
  outputs = {"global_prob": rng.uniform(0, 1, (3, 25)),
             "a_frame_prob": rng.uniform(0, 2, (3, 10, 25)),
             "v_frame_prob": rng.uniform(0, 2, (3, 10, 25)),
             "gt_a": (rng.random((3, 25, 10)) < 0.2).astype(np.uint8),
             "gt_v": (rng.random((3, 25, 10)) < 0.2).astype(np.uint8)}
  rows = task.prediction_rows(outputs, {"filename": np.array(["a_0_10", "b_0_10", "c_0_10"])})
  path = tmp_path / "predictions.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  direct = task.metrics()
  direct.update(outputs)
  scored = task.metrics()
  scored.update(task.read_predictions(path))
  assert scored.result() == direct.result()


def test_logmel_mixup_mixes_each_segment_with_the_reversed_batch():
  from dgsct_jax.models.encoders import htsat  # pylint: disable=import-outside-toplevel
  model = htsat.HTSAT(**presets.HTSAT_TINY, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(4)
  wave = jnp.asarray(0.1 * rng.standard_normal((4, 32000)), jnp.float32)
  lam = jnp.asarray([0.9, 0.2, 0.5, 1.0])
  plain, _ = model.front(wave)
  mixed, _ = model.front(wave, mixup_lambda=lam)
  want = lam[:, None, None] * plain + (1 - lam[:, None, None]) * plain[::-1]
  np.testing.assert_allclose(mixed, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mixup, train_mode, deterministic, drawn", [
    (True, True, False, True),     # training with train-mode encoders: λ per segment
    (True, True, True, False),     # evaluation
    (True, False, False, False),   # eval-mode encoders (`clean`): HTS-AT does not mix
    (False, True, False, False),   # option off (AVE)
])
def test_logmel_mixup_only_while_hts_at_trains(mixup, train_mode, deterministic, drawn):
  config = dict(presets.backbone("tiny"), logmel_mixup=mixup, encoder_train_mode=train_mode)
  model = nnx.eval_shape(lambda: backbone.SwinHTSAT(config, rngs=nnx.Rngs(0)))
  enc_det = deterministic or not model.encoder_train_mode
  kwargs = model._mixup(20, enc_det, nnx.Rngs(dropout=0))  # pylint: disable=protected-access
  assert ("mixup_lambda" in kwargs) == drawn
  if drawn:
    lam = np.asarray(kwargs["mixup_lambda"])
    assert lam.shape == (20,) and 0 < lam.min() and lam.max() < 1 and lam.std() > 0.1


def test_logmel_mixup_reaches_hts_at_in_a_training_forward(monkeypatch):
  from dgsct_jax.models.encoders import htsat  # pylint: disable=import-outside-toplevel
  seen = []
  embed = htsat.HTSAT.embed

  def recording_embed(self, waveforms, **kw):
    seen.append(kw.get("mixup_lambda"))
    return embed(self, waveforms, **kw)

  monkeypatch.setattr(htsat.HTSAT, "embed", recording_embed)
  config = dict(presets.backbone("tiny"), logmel_mixup=True)
  model = nnx.eval_shape(lambda: backbone.SwinHTSAT(config, rngs=nnx.Rngs(0)))
  audio = jax.ShapeDtypeStruct((2, 10, 32000), jnp.float32)
  frames = jax.ShapeDtypeStruct((2, 10, 3, 64, 64), jnp.float32)
  # Traced only (no compile, no compute): the training forward hands HTS-AT one λ per segment.
  nnx.eval_shape(lambda m, a, f: m.encode_segments(a, f, deterministic=False,
                                                   rngs=nnx.Rngs(dropout=0)), model, audio, frames)
  (lam,) = seen
  assert lam.shape == (20,)
