"""AVS metrics (spec §2.4): hand-computed M_J / M_F cases and every reference quirk."""
import numpy as np
import pytest

from dgsct_jax.metrics import avs


def _logit(p):
  p = np.asarray(p, np.float64)
  return np.log(p / (1 - p)).astype(np.float32)


def test_thresholds_are_torch_linspace_bit_for_bit():
  tau = avs.thresholds()
  assert tau.dtype == np.float32 and tau.shape == (255,)
  assert tau[0] == 0.0 and tau[-1] == 1.0       # float32(1 - 1e-10) is exactly 1.0
  # Values of torch.linspace(0, 1 - 1e-10, 255) where a plain numpy linspace or a
  # float32 start + step·i differs by one ulp.
  want = {1: "0x1.0204080000000p-8", 127: "0x1.0000000000000p-1",
          143: "0x1.2040820000000p-1", 174: "0x1.5ebd7c0000000p-1",
          238: "0x1.dfbf800000000p-1", 253: "0x1.fdfbf80000000p-1"}
  for i, h in want.items():
    assert float(tau[i]) == float.fromhex(h), i


def test_frame_iou_nonempty_empty_and_strict_threshold():
  logits = np.full((2, 4, 4), -5.0, np.float32)
  masks = np.zeros((2, 4, 4), np.uint8)
  # Frame 0: prediction 4 px (row 0), GT 6 px (row 0 cols 2-3 + row 1): overlap 2 → 2/8.
  logits[0, 0, :] = 5.0
  masks[0, 0, 2:] = 1
  masks[0, 1, :] = 1
  # Frame 1: empty GT, 3 predicted px (+ one logit exactly 0: sigmoid 0.5 is not > 0.5).
  logits[1, 3, :3] = 5.0
  logits[1, 2, 0] = 0.0
  iou = avs.frame_iou(logits, masks)
  np.testing.assert_allclose(iou, [2 / 8, 13 / 16], rtol=1e-6)
  assert avs.mask_iou(logits, masks) == pytest.approx((2 / 8 + 13 / 16) / 2, rel=1e-6)
  # (videos, T, H, W) is flattened to frames.
  assert avs.mask_iou(logits[None], masks[None]) == avs.mask_iou(logits, masks)


def test_frame_fmeasure_hand_computed():
  # GT = pixels 0, 1; scores 0.9, 0.3, 0.6, 0.1.
  logits = _logit([0.9, 0.3, 0.6, 0.1]).reshape(1, 2, 2)
  masks = np.array([1, 1, 0, 0], np.uint8).reshape(1, 2, 2)
  f, nonempty = avs.frame_fmeasure(logits, masks)
  tau = avs.thresholds()
  f = f[0]
  assert nonempty.tolist() == [True]

  def fb(p, r):
    return 1.3 * p * r / (0.3 * p + r)
  for k, want in ((0, fb(0.5, 1.0)),                       # all 4 predicted
                  (np.searchsorted(tau, 0.2), fb(2 / 3, 1.0)),   # 0.9, 0.3, 0.6
                  (np.searchsorted(tau, 0.45), fb(0.5, 0.5)),    # 0.9, 0.6
                  (np.searchsorted(tau, 0.75), fb(1.0, 0.5)),    # 0.9 only
                  (254, 0.0)):                                   # nothing: 0/0 → 0
    assert f[k] == pytest.approx(want, rel=1e-6), k
  assert avs.batch_fmeasure(logits, masks) == pytest.approx(fb(1.0, 0.5), rel=1e-6)


def test_saturated_sigmoid_counts_at_last_threshold():
  # sigmoid(20) rounds to 1.0 in float32, so it is ≥ τ_254 = 1.0.
  logits = np.array([[[20.0, -20.0]]], np.float32)
  masks = np.array([[[1, 0]]], np.uint8)
  f, _ = avs.frame_fmeasure(logits, masks)
  assert f[0, -1] == pytest.approx(1.0)


def test_empty_gt_frames_are_skipped_and_empty_batch_scores_zero():
  logits = _logit([0.9, 0.1, 0.9, 0.1]).reshape(2, 1, 2)
  masks = np.array([[[1, 0]], [[0, 0]]], np.uint8)
  # Frame 1 (empty GT) is skipped: the batch F is frame 0's best, 1.0.
  assert avs.batch_fmeasure(logits, masks) == pytest.approx(1.0)
  assert avs.batch_fmeasure(logits[1:], masks[1:]) == 0.0


def _two_frames():
  """Frame A is best at a high threshold, frame B at a low one."""
  # A: GT {0}; scores 0.9 (fg), 0.5, 0.5, 0.5 → best τ > 0.5 (F = 1).
  # B: GT {0,1,2}; scores 0.2, 0.2, 0.2, 0.1 (bg) → best τ in (0.1, 0.2] (F = 1).
  logits = np.stack([_logit([0.9, 0.5, 0.5, 0.5]), _logit([0.2, 0.2, 0.2, 0.1])])
  masks = np.array([[1, 0, 0, 0], [1, 1, 1, 0]], np.uint8)
  return logits.reshape(2, 1, 2, 2), masks.reshape(2, 1, 2, 2)   # 2 videos × T=1


def test_fmeasure_depends_on_batch_size_but_dataset_variant_does_not():
  logits, masks = _two_frames()
  one = avs.evaluate_dataset(logits, masks, batch_size=1, frames_per_video=1)
  two = avs.evaluate_dataset(logits, masks, batch_size=2, frames_per_video=1)
  assert one["fmeasure"] == pytest.approx(100.0)             # each batch picks its own τ
  assert two["fmeasure"] < 95.0                              # one τ for both frames
  assert one["fmeasure_dataset"] == pytest.approx(two["fmeasure_dataset"])
  assert two["fmeasure_dataset"] == pytest.approx(two["fmeasure"])
  assert (one["num_batches"], two["num_batches"]) == (2, 1)


def test_miou_is_mean_over_batches_with_partial_last_batch():
  # 3 videos × 1 frame, batch 2: batches {0,1}, {2}. IoUs 1, 0, 0.5.
  logits = np.full((3, 1, 1, 2), -5.0, np.float32)
  masks = np.zeros((3, 1, 1, 2), np.uint8)
  logits[0, 0, 0, 0] = 5.0
  masks[0, 0, 0, 0] = 1                  # IoU 1
  masks[1, 0, 0, 0] = 1                  # nothing predicted: IoU 0
  logits[2, 0, 0, :] = 5.0
  masks[2, 0, 0, 0] = 1                  # IoU 1/2
  r = avs.evaluate_dataset(logits, masks, batch_size=2, frames_per_video=1)
  assert r["miou"] == pytest.approx(100 * ((1 + 0) / 2 + 0.5) / 2, rel=1e-6)
  assert r["miou_per_frame"] == pytest.approx(100 * 1.5 / 3, rel=1e-6)
  assert r["baseline_miou_per_frame"] == pytest.approx(100 * 0.5, rel=1e-6)  # 1 px of 2
  assert [list(b) for b in avs.split_batches(3, 2)] == [[0, 1], [2]]


def test_accumulator_matches_evaluate_dataset_on_random_batches():
  rng = np.random.default_rng(0)
  logits = (rng.normal(size=(6, 5, 16, 16)) * 3).astype(np.float32)
  masks = (rng.random((6, 5, 16, 16)) < 0.3).astype(np.uint8)
  masks[1] = 0
  acc = avs.AVSAccumulator()
  for b in range(0, 6, 4):
    acc.update(logits[b:b + 4], masks[b:b + 4])
  want = avs.evaluate_dataset(logits, masks, batch_size=4)
  assert want.pop("baseline_miou_per_frame") > 0
  assert acc.result() == want
  with pytest.raises(ValueError, match="whole videos"):
    avs.evaluate_dataset(logits[:, :4], masks[:, :4].reshape(-1, 16, 16), batch_size=4)


def test_score_cli_library_entry(tmp_path):
  from dgsct_jax import score
  logits, masks = _two_frames()
  np.savez(tmp_path / "p.npz", logits=logits, masks=masks)
  got = score.score("avs", tmp_path / "p.npz", batch_size=1, frames_per_video=1)
  assert got == avs.evaluate_dataset(logits, masks, batch_size=1, frames_per_video=1)
  np.savez(tmp_path / "q.npz", logits=logits)
  with pytest.raises(score.ScoringError, match=r"q\.npz: missing arrays \['masks'\]"):
    score.score("avs", tmp_path / "q.npz")


def test_frame_stats_rows_score_as_their_logits_through_json():
  """Rows of per-frame stats (what the trainer's predictions.jsonl holds) give the same
  metric as the logits and masks, after a JSON round trip and in other chunks."""
  import json  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  logits = (rng.normal(size=(7, 5, 12, 12)) * 3).astype(np.float32)
  masks = (rng.random((7, 5, 12, 12)) < 0.3).astype(np.uint8)
  masks[2, :3] = 0
  stats = avs.frame_stats(logits, masks)
  assert stats["iou"].shape == (7, 5) and stats["f_curve"].shape == (7, 5, avs.NUM_THRESHOLDS)
  stats = {k: np.asarray(json.loads(json.dumps(v.tolist()))) for k, v in stats.items()}
  metrics = avs.AVSMetrics(batch_size=3)
  for start, stop in ((0, 2), (2, 6), (6, 7)):
    metrics.update({k: v[start:stop] for k, v in stats.items()})
  want = avs.evaluate_dataset(logits, masks, batch_size=3)
  del want["baseline_miou_per_frame"]  # the masks are not in the rows
  assert metrics.result() == want and want["num_batches"] == 3
  with pytest.raises(KeyError, match="nonempty"):
    avs.AVSMetrics().update({"iou": stats["iou"], "f_curve": stats["f_curve"]})
  with pytest.raises(ValueError, match="whole videos"):
    avs.AVSMetrics().update({k: v[:, :4] for k, v in stats.items()})
