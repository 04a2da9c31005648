"""AVE targets, losses and segment accuracy against the reference's torch computation,
and the AVE task's accumulator, prediction rows and predictions file."""
import json

import jax
import numpy as np
import pytest

from dgsct_jax import score
from dgsct_jax.metrics import ave as ave_metrics
from dgsct_jax.tasks.ave import losses as ave
from dgsct_jax.tasks.ave import task as ave_task
from torch_refs import import_torch


def random_labels(rng, batch, steps=10):
  """One-hot (B, T, 29): one event class per video on random segments, background elsewhere."""
  labels = np.zeros((batch, steps, 29), np.float32)
  for b in range(batch):
    cls = rng.integers(0, 28)
    events = rng.random(steps) < 0.6
    labels[b, np.arange(steps), np.where(events, cls, 28)] = 1
  return labels


def random_outputs(rng, batch, steps=10):
  f = lambda *s: rng.standard_normal(s).astype(np.float32)
  return {"is_event_scores": f(batch, steps), "event_scores": f(batch, 28),
          "audio_visual_gate": rng.random((batch, steps)).astype(np.float32),
          "av_score": f(batch, 28)}


def reference_loss(torch, outputs, labels):
  """`train` of DG-SCT/AVE/main_trans.py, on (B, T) scores (already transposed there)."""
  t = lambda x: torch.from_numpy(np.asarray(x))
  labels = t(labels)
  labels_bce, labels_evn = labels[:, :, :-1].max(-1)
  labels_event, _ = labels_evn.max(-1)
  bce, ce = torch.nn.BCEWithLogitsLoss(), torch.nn.CrossEntropyLoss()
  parts = {"is_event": bce(t(outputs["is_event_scores"]), labels_bce),
           "gate": bce(t(outputs["audio_visual_gate"]), labels_bce),
           "cas": ce(t(outputs["av_score"]), labels_event),
           "event_class": ce(t(outputs["event_scores"]), labels_event)}
  parts["total"] = parts["is_event"] + parts["gate"] + parts["event_class"] + parts["cas"]
  return {k: float(v) for k, v in parts.items()}


def reference_accuracy(torch, is_event_scores, event_scores, labels):
  """`compute_accuracy_supervised` of the reference."""
  _, targets = torch.from_numpy(labels).max(-1)
  pos = torch.from_numpy(is_event_scores).sigmoid() > 0.5
  _, event_class = torch.from_numpy(event_scores).max(-1)
  pred = pos.long() * event_class[:, None]
  pred[pos == 0] = 28
  correct = pred.eq(targets)
  return float(correct.sum().double() * (100.0 / correct.numel()))


@pytest.mark.parametrize("seed", [0, 1])
def test_losses_match_torch(seed):
  torch = import_torch()
  rng = np.random.default_rng(seed)
  labels, outputs = random_labels(rng, 6), random_outputs(rng, 6)
  want = reference_loss(torch, outputs, labels)
  got = jax.jit(ave.losses)(outputs, labels)
  for name, value in want.items():
    np.testing.assert_allclose(float(got[name]), value, rtol=1e-5, err_msg=name)


def test_gate_loss_switch():
  torch = import_torch()
  rng = np.random.default_rng(5)
  labels, outputs = random_labels(rng, 4), random_outputs(rng, 4)
  seg = labels[..., :-1].max(-1)
  plain = ave.losses(outputs, labels, gate_loss_on_logits=False)["gate"]
  want = torch.nn.BCELoss()(torch.from_numpy(outputs["audio_visual_gate"]), torch.from_numpy(seg))
  np.testing.assert_allclose(float(plain), float(want), rtol=1e-5)
  faithful = ave.losses(outputs, labels)["gate"]
  assert abs(float(faithful) - float(plain)) > 1e-3


def test_targets_hand_made():
  labels = np.zeros((2, 4, 29), np.float32)
  labels[0, :, 28] = 1
  labels[0, 1:3, 28], labels[0, 1:3, 7] = 0, 1       # video 0: class 7 on segments 1, 2
  labels[1, :, 28] = 1                                # video 1: background only
  t = ave.targets(labels)
  np.testing.assert_array_equal(t["segment_is_event"], [[0, 1, 1, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(t["video_class"], [7, 0])
  np.testing.assert_array_equal(t["segment_class"], [[28, 7, 7, 28], [28] * 4])


def test_accuracy_hand_made():
  labels = np.zeros((2, 4, 29), np.float32)
  labels[0, :, 28] = 1
  labels[0, 1:3, 28], labels[0, 1:3, 7] = 0, 1
  labels[1, :, 3] = 1                                 # video 1: class 3 everywhere
  logit = lambda p: np.log(p / (1 - p))
  is_event = np.array([[logit(0.2), logit(0.9), logit(0.51), logit(0.6)],   # bg ok, 7 ok, 7 ok, wrong
                       [logit(0.9), logit(0.4), logit(0.7), logit(0.8)]],   # 3? no: class 5 predicted
                      np.float32)
  event_scores = np.zeros((2, 28), np.float32)
  event_scores[0, 7] = 2.0
  event_scores[1, 5] = 1.0
  pred = ave_metrics.segment_predictions(is_event, event_scores)
  np.testing.assert_array_equal(pred, [[28, 7, 7, 7], [5, 28, 5, 5]])
  np.testing.assert_allclose(ave_metrics.video_accuracy(is_event, event_scores, labels),
                             [75.0, 0.0])
  np.testing.assert_allclose(
      float(ave_metrics.segment_accuracy(is_event, event_scores, labels)), 37.5)
  # sigmoid exactly 0.5 is not an event (strict >)
  pred_half = ave_metrics.segment_predictions(np.zeros((1, 4), np.float32), event_scores[:1])
  np.testing.assert_array_equal(pred_half, [[28] * 4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_matches_reference(seed):
  torch = import_torch()
  rng = np.random.default_rng(seed)
  labels, outputs = random_labels(rng, 8), random_outputs(rng, 8)
  want = reference_accuracy(torch, outputs["is_event_scores"], outputs["event_scores"], labels)
  got = jax.jit(ave_metrics.segment_accuracy)(outputs["is_event_scores"], outputs["event_scores"], labels)
  np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_epoch_accuracy_pooled_vs_batch_mean():
  """402 test videos in batches of 8: the reference's running mean over-weights the last batch."""
  torch = import_torch()
  rng = np.random.default_rng(7)
  counts, running = [], 0.0
  sizes = [8] * 50 + [2]
  for i, size in enumerate(sizes):
    labels, outputs = random_labels(rng, size), random_outputs(rng, size)
    mask = np.ones(8, np.float32)
    mask[size:] = 0
    pad = lambda x: np.concatenate([x, np.zeros((8 - size,) + x.shape[1:], x.dtype)])
    counts.append(ave_metrics.segment_counts(pad(outputs["is_event_scores"]),
                                             pad(outputs["event_scores"]), pad(labels),
                                             mask=mask))
    acc = reference_accuracy(torch, outputs["is_event_scores"], outputs["event_scores"], labels)
    running = (running * i + acc) / (i + 1)              # `eval` of the reference
  correct, total = map(np.asarray, zip(*counts))
  assert total.sum() == 4020
  np.testing.assert_allclose(ave_metrics.epoch_accuracy(correct, total, average="batches"),
                             running, rtol=1e-9)
  pooled = ave_metrics.epoch_accuracy(correct, total)
  np.testing.assert_allclose(pooled, 100 * correct.sum() / 4020, rtol=1e-12)
  assert abs(pooled - running) > 1e-3
  with pytest.raises(ValueError, match="average"):
    ave_metrics.epoch_accuracy(correct, total, average="videos")


def test_segment_predictions_put_background_after_the_event_classes():
  is_event = np.asarray([[3.0, -3.0, 0.1]], np.float32)
  six = np.asarray([[0.0, 2.0, 1.0, 0.0, 0.0, 0.0]], np.float32)  # synthetic: 6 classes
  np.testing.assert_array_equal(ave_metrics.segment_predictions(is_event, six), [[1, 6, 1]])
  ave28 = np.zeros((1, 28), np.float32)
  ave28[0, 27] = 1.0
  np.testing.assert_array_equal(ave_metrics.segment_predictions(is_event, ave28), [[27, 28, 27]])
  labels = np.eye(7, dtype=np.float32)[[[1, 6, 2]]]
  np.testing.assert_array_equal(ave_metrics.segment_correct(is_event, six, labels), [[True, True, False]])


def test_accumulator_pools_segments_and_finds_the_majority_class():
  """SegmentAccuracy over chunks == the pooled accuracy of the reference's formula."""
  torch = import_torch()
  rng = np.random.default_rng(11)
  labels, outputs = random_labels(rng, 13), random_outputs(rng, 13)
  task = ave_task.AVE()
  eval_out = jax.tree.map(np.asarray, task.eval_outputs(outputs, {"label": labels}))
  acc = task.metrics()
  for start in (0, 5, 6):  # uneven chunks, one empty
    stop = {0: 5, 5: 6, 6: 13}[start]
    acc.update({k: v[start:stop] for k, v in eval_out.items()})
  acc.update({k: v[:0] for k, v in eval_out.items()})
  result = acc.result()
  want = reference_accuracy(torch, outputs["is_event_scores"], outputs["event_scores"], labels)
  np.testing.assert_allclose(result["accuracy"], want, rtol=1e-9)
  classes = labels.argmax(-1).ravel()
  assert result["segments"] == classes.size
  assert result["majority_class"] == np.bincount(classes).argmax()
  np.testing.assert_allclose(result["majority_baseline"],
                             100 * np.bincount(classes).max() / classes.size)
  with pytest.raises(ValueError, match="no segments"):
    task.metrics().result()


def test_prediction_rows_are_scored_again_by_the_cli(tmp_path):
  """predictions.jsonl as predict writes it → `dgsct_jax.score --task=ave` → the same numbers."""
  rng = np.random.default_rng(12)
  labels, outputs = random_labels(rng, 6), random_outputs(rng, 6)
  task = ave_task.AVE()
  eval_out = jax.tree.map(np.asarray, task.eval_outputs(outputs, {"label": labels}))
  rows = task.prediction_rows(eval_out, {"video_id": np.asarray([f"v{i}" for i in range(6)])})
  assert rows[2]["video_id"] == "v2" and rows[2]["pred"] == eval_out["pred"][2].tolist()
  path = tmp_path / "predictions.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  acc = task.metrics()
  acc.update(eval_out)
  assert score.score("ave", path) == acc.result()
  path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"video_id": "x"}) + "\n")
  with pytest.raises(ValueError, match="line 2"):
    score.score("ave", path)
  with pytest.raises(ValueError, match="no option"):
    score.score("ave", path, batch_size=4)
