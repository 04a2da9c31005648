"""AVQA metrics (spec §3.5): type bookkeeping on the real jsons, pooling, overall "Avg"."""
import json

import numpy as np
import pytest

from dgsct_jax.metrics import avqa

# spec §3.1 table: question counts per (modality, subtype).
TYPE_COUNTS = {
    "test": {"audio/counting": 1022, "audio/comparative": 601, "visual/counting": 1199,
             "visual/location": 1228, "av/existential": 995, "av/counting": 1274,
             "av/location": 927, "av/comparative": 1115, "av/temporal": 824},
    "val": {"audio/counting": 515, "audio/comparative": 299, "visual/counting": 600,
            "visual/location": 614, "av/existential": 499, "av/counting": 635,
            "av/location": 462, "av/comparative": 557, "av/temporal": 414},
}


@pytest.fixture(scope="module")
def qa(annotations_dir):
  root = annotations_dir / "AVQA"
  if not root.is_dir():
    pytest.skip(f"MUSIC-AVQA annotations not found at {root}")
  out = {s: json.loads((root / f"avqa-{s}.json").read_text()) for s in ("val", "test")}
  out["ans_vocab"] = (root / "ans_vocab.txt").read_text().split("\n")[:42]
  return out


@pytest.mark.parametrize("split", ["test", "val"])
def test_type_counts_of_real_split(qa, split):
  samples = qa[split]
  answers = avqa.answers_to_ids([s["anser"] for s in samples], qa["ans_vocab"])
  acc = avqa.avqa_accuracy(answers, answers, [s["type"] for s in samples])
  for key, n in TYPE_COUNTS[split].items():
    assert acc[f"count/{key}"] == n, key
    assert acc[key] == 100.0
  if split == "test":
    assert (acc["count/audio"], acc["count/visual"], acc["count/av"]) == (1623, 2427, 5135)
    assert acc["count/overall"] == 9185


def test_avg_is_overall_accuracy_not_mean_of_modalities(qa):
  """DG-SCT's own numbers: AQ 77.4, VQ 81.9, AVQ 70.7 → Avg 74.8 (the mean would be 76.7)."""
  samples = qa["test"]
  types = [avqa.parse_type(s["type"]) for s in samples]
  answers = avqa.answers_to_ids([s["anser"] for s in samples], qa["ans_vocab"])
  target = {"Audio": 0.774, "Visual": 0.819, "Audio-Visual": 0.707}
  pred = answers.copy()
  for modality, rate in target.items():
    idx = [i for i, t in enumerate(types) if t[0] == modality]
    wrong = idx[int(round(rate * len(idx))):]
    pred[wrong] = (answers[wrong] + 1) % 42
  acc = avqa.avqa_accuracy(pred, answers, types)
  assert (round(acc["audio"], 1), round(acc["visual"], 1), round(acc["av"], 1)) == (77.4, 81.9, 70.7)
  assert round(acc["overall"], 1) == 74.8
  assert round(avqa.avqa_accuracy(pred, answers, types, overall="mean")["overall"], 1) == 76.7


def test_pooled_modality_and_subtypes_hand_computed():
  types = ([("Audio", "Counting")] * 4 + [("Audio", "Comparative")] * 1 +
           [("Visual", "Location")] * 2 + [("Audio-Visual", "Temporal")] * 1)
  answers = np.zeros(8, np.int32)
  #         A-Count: 1 of 4 right, A-Comp: 1 of 1, V-Loc: 2 of 2, AV-Temp: 0 of 1.
  pred = np.array([0, 1, 1, 1, 0, 0, 0, 5])
  acc = avqa.avqa_accuracy(pred, answers, types)
  assert acc["audio/counting"] == 25.0 and acc["audio/comparative"] == 100.0
  assert acc["audio"] == 40.0                       # pooled: 2/5, not (25 + 100)/2
  assert avqa.avqa_accuracy(pred, answers, types, modality_average="mean")["audio"] == 62.5
  assert acc["visual"] == 100.0 and acc["av"] == 0.0
  assert acc["overall"] == 50.0                     # 4/8
  assert "visual/counting" not in acc               # absent types are omitted


def test_logits_and_json_type_strings():
  logits = np.zeros((3, 42), np.float32)
  logits[0, 3] = logits[1, 7] = logits[2, 1] = 1.0
  types = ['["Audio", "Counting"]', '["Visual", "Counting"]', '["Audio-Visual", "Temporal"]']
  acc = avqa.avqa_accuracy(logits, [3, 7, 2], types)
  assert acc["overall"] == pytest.approx(200 / 3) and acc["av/temporal"] == 0.0


def test_unknown_types_count_in_overall_only():
  acc = avqa.avqa_accuracy([1, 1], [1, 0], [("Audio", "Counting"), ("Audio", "Unknown")])
  assert acc["overall"] == 50.0 and acc["audio"] == 100.0 and acc["count/audio"] == 1


def test_errors():
  with pytest.raises(ValueError, match="same length"):
    avqa.avqa_accuracy([1, 2], [1], [("Audio", "Counting")] * 2)
  with pytest.raises(KeyError, match="'maybe' is not in the answer vocabulary"):
    avqa.answers_to_ids(["yes", "maybe"], ["yes", "no"])


def test_score_cli(qa, annotations_dir, tmp_path):
  """The CLI end to end (subprocess) on json predictions in json order, plus id checks."""
  import subprocess
  import sys
  from dgsct_jax import score
  root = annotations_dir / "AVQA"
  preds = [{"question_id": s["question_id"], "answer": s["anser"]} for s in qa["test"]]
  preds[0]["answer"] = "zero" if preds[0]["answer"] != "zero" else "one"   # one wrong
  path = tmp_path / "pred.json"
  path.write_text(json.dumps(preds))
  out = tmp_path / "scores.json"
  res = subprocess.run(
      [sys.executable, "-m", "dgsct_jax.score", "--task=avqa", f"--predictions={path}",
       f"--annotations={root / 'avqa-test.json'}", f"--ans_vocab={root / 'ans_vocab.txt'}",
       f"--output={out}"], capture_output=True, text=True, check=False)
  assert res.returncode == 0, res.stderr
  assert "overall: 99.99 %" in res.stdout
  assert json.loads(out.read_text())["overall"] == pytest.approx(100 * 9184 / 9185)
  # question_id repeats in MUSIC-AVQA: a shuffled order cannot be re-aligned.
  path.write_text(json.dumps(preds[::-1]))
  with pytest.raises(ValueError, match="occur more than once"):
    score.score("avqa", path, annotations=root / "avqa-test.json",
                      ans_vocab=root / "ans_vocab.txt")
