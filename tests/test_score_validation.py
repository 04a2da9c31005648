"""`dgsct_jax.score` refuses incomplete, foreign and invalid predictions with one line naming
the file; part of a split is scored only with `allow_subset`, and then reported. Small
hand-made annotation files, so these tests need no dataset."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dgsct_jax import score
from dgsct_jax.metrics import avvp
from dgsct_jax.tasks.ave import task as ave_task

VOCAB = [f"answer{i}" for i in range(42)]
TYPES = ['["Audio", "Counting"]', '["Visual", "Location"]', '["Audio-Visual", "Temporal"]',
         '["Audio", "Comparative"]']


@pytest.fixture
def avqa_split(tmp_path):
  """4 questions (ids 10..13) with answers 0..3, and the answer vocabulary."""
  samples = [{"question_id": 10 + i, "anser": VOCAB[i], "type": TYPES[i]} for i in range(4)]
  (tmp_path / "qa.json").write_text(json.dumps(samples))
  (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
  return {"annotations": tmp_path / "qa.json", "ans_vocab": tmp_path / "vocab.txt"}


def _json_predictions(tmp_path, question_ids, name="pred.json"):
  path = tmp_path / name
  path.write_text(json.dumps([{"question_id": q, "prediction": q - 10} for q in question_ids]))
  return path


def test_avqa_fewer_rows_than_the_json_are_refused(tmp_path, avqa_split):
  np.savez(tmp_path / "p.npz", predictions=np.arange(3))
  with pytest.raises(score.ScoringError, match=r"p\.npz: 3 predictions for the 4 questions"):
    score.score("avqa", tmp_path / "p.npz", **avqa_split)


def test_avqa_subset_of_question_ids_only_when_allowed(tmp_path, avqa_split):
  path = _json_predictions(tmp_path, [10, 12])
  with pytest.raises(score.ScoringError, match=r"pred\.json: predictions for 2 of the split's 4 "
                     r"questions \(score part of a split only with --allow_subset\)"):
    score.score("avqa", path, **avqa_split)
  result = score.score("avqa", path, allow_subset=True, **avqa_split)
  assert result["subset"] == "scored 2 of 4" and result["overall"] == 100.0
  assert "subset" not in score.score("avqa", _json_predictions(tmp_path, [10, 11, 12, 13]),
                                     **avqa_split)


@pytest.mark.parametrize("ids, message", [
    ([10, 11, 12, 99], r"1 question ids not in the split, e.g. \[99\]"),
    ([10, 11, 12, 12], r"1 question ids occur more than once, e.g. \[12\]"),
])
def test_avqa_foreign_or_repeated_question_ids(tmp_path, avqa_split, ids, message):
  with pytest.raises(score.ScoringError, match=r"pred\.json: " + message):
    score.score("avqa", _json_predictions(tmp_path, ids), allow_subset=True, **avqa_split)


@pytest.mark.parametrize("arrays, message", [
    ({"predictions": np.array([0, 1, 42, 3])},
     r"prediction holds 1 id\(s\) outside \[0, 42\), e.g. 42 at index \(2,\)"),
    ({"predictions": np.array([0, -1, 2, 3])}, r"prediction holds 1 id\(s\) outside \[0, 42\)"),
    ({"predictions": np.array([0.0, 1.0, 2.0, 3.0])}, r"prediction must hold integer ids"),
    ({"logits": np.zeros((4, 41))}, r"logits must have shape \(N, 42\), got \(4, 41\)"),
    ({"logits": np.where(np.arange(42) == 5, np.nan, 0.0)[None].repeat(4, 0)},
     r"logits holds 4 NaN/Inf value\(s\), the first at index \(0, 5\)"),
    ({"logits": np.full((4, 42), np.inf)}, r"logits holds 168 NaN/Inf"),
    ({"predictions": np.arange(4), "answers": np.array([0, 1, 2, 50]), "types": np.array(TYPES)},
     r"answer holds 1 id\(s\) outside \[0, 42\)"),
])
def test_avqa_invalid_arrays(tmp_path, avqa_split, arrays, message):
  np.savez(tmp_path / "p.npz", **arrays)
  with pytest.raises(score.ScoringError, match=r"p\.npz: " + message):
    score.score("avqa", tmp_path / "p.npz", **avqa_split)


def test_avqa_vocabulary_must_have_42_answers(tmp_path, avqa_split):
  (tmp_path / "vocab.txt").write_text("\n".join(VOCAB[:40]))
  np.savez(tmp_path / "p.npz", predictions=np.arange(4))
  with pytest.raises(score.ScoringError, match=r"vocab\.txt: 40 answers, MUSIC-AVQA has 42"):
    score.score("avqa", tmp_path / "p.npz", **avqa_split)


@pytest.fixture
def llp_split(tmp_path):
  """An LLP annotation folder whose test split has 3 videos."""
  root = tmp_path / "AVVP"
  root.mkdir()
  names = ["vid_a_0_10", "vid_b_0_10", "vid_c_0_10"]
  (root / "AVVP_test_pd.csv").write_text(
      "filename\tevent_labels\n" + "".join(f"{n}\tSpeech,Dog\n" for n in names))
  for modality in ("audio", "visual"):
    (root / f"AVVP_eval_{modality}.csv").write_text(
        "filename\tonset\toffset\tevent_labels\n" + "".join(f"{n}\t0\t4\tSpeech\n" for n in names))
  return root, names


def _avvp_outputs(n, **changes):
  rng = np.random.default_rng(0)
  out = {"global_prob": rng.random((n, 25)), "a_frame_prob": rng.random((n, 10, 25)),
         "v_frame_prob": rng.random((n, 10, 25))}
  return dict(out, **changes)


def test_avvp_filenames_must_be_the_split(tmp_path, llp_split):
  root, names = llp_split
  path = tmp_path / "p.npz"
  np.savez(path, filenames=np.array(names[:2] + ["vid_x_0_10"]), **_avvp_outputs(3))
  with pytest.raises(score.ScoringError, match=r"p\.npz: 1 filenames not in the split, e\.g\. "
                     r"\['vid_x_0_10'\]"):
    score.score("avvp", path, annotations=root)
  np.savez(path, filenames=np.array([names[0], names[0], names[1]]), **_avvp_outputs(3))
  with pytest.raises(score.ScoringError, match=r"1 filenames occur more than once"):
    score.score("avvp", path, annotations=root)
  np.savez(path, filenames=np.array(names[:2]), **_avvp_outputs(2))
  with pytest.raises(score.ScoringError, match=r"predictions for 2 of the split's 3 videos"):
    score.score("avvp", path, annotations=root)
  result = score.score("avvp", path, annotations=root, allow_subset=True)
  assert result["subset"] == "scored 2 of 3"
  np.savez(path, **_avvp_outputs(2))  # no filenames: the split's order, so all of it
  with pytest.raises(score.ScoringError, match=r"2 predictions for 3 videos \(give `filenames`"):
    score.score("avvp", path, annotations=root, allow_subset=True)


@pytest.mark.parametrize("changes, message", [
    ({"global_prob": np.full((3, 25), 1.5)}, r"global_prob holds 75 value\(s\) outside \[0, 1\]"),
    ({"a_frame_prob": -np.ones((3, 10, 25))},
     r"a_frame_prob holds 750 value\(s\) outside \[0, 2\]"),
    ({"v_frame_prob": np.full((3, 10, 25), np.nan)}, r"v_frame_prob holds 750 NaN/Inf"),
    ({"global_prob": np.zeros((3, 24))}, r"global_prob must have shape \(N, 25\), got \(3, 24\)"),
    ({"a_frame_prob": np.zeros((3, 25, 10))}, r"a_frame_prob must have shape \(N, 10, 25\)"),
])
def test_avvp_invalid_probabilities(tmp_path, llp_split, changes, message):
  np.savez(tmp_path / "p.npz", **_avvp_outputs(3, **changes))
  with pytest.raises(score.ScoringError, match=r"p\.npz: " + message):
    score.score("avvp", tmp_path / "p.npz", annotations=llp_split[0])


@pytest.mark.parametrize("arrays, message", [
    ({"so_a": np.full((3, 25, 10), 0.7)}, r"so_a must be binary \(0/1\) but holds 750 other"),
    ({"gt_v": np.full((3, 25, 10), 2)}, r"gt_v must be binary"),
    ({"so_v": np.zeros((3, 24, 10))}, r"so_v must have shape \(N, 25, 10\), got \(3, 24, 10\)"),
    ({"gt_a": np.zeros((2, 25, 10))}, r"rows differ in length"),
])
def test_avvp_invalid_matrices(tmp_path, arrays, message):
  zeros = np.zeros((3, 25, 10), np.uint8)
  np.savez(tmp_path / "p.npz", filenames=np.array(["a", "b", "c"]),
           **dict({k: zeros for k in ("so_a", "so_v", "gt_a", "gt_v")}, **arrays))
  with pytest.raises(score.ScoringError, match=r"p\.npz: " + message):
    score.score("avvp", tmp_path / "p.npz")


def test_avvp_metric_refuses_probabilities_as_matrices():
  """The accumulator itself (shared with the training-time evaluation) checks its rows."""
  metrics = avvp.AVVPMetrics()
  with pytest.raises(ValueError, match="so_a must be binary"):
    metrics.update({k: np.full((1, 25, 10), 0.5) for k in ("so_a", "so_v", "gt_a", "gt_v")})


@pytest.fixture
def avs_meta(tmp_path):
  """An AVSBench meta CSV with 2 test videos (and a train one)."""
  path = tmp_path / "s4_meta_data.csv"
  path.write_text("name,video_id,category,split\nv0,0,dog,test\nv1,1,dog,train\nv2,2,cat,test\n")
  return path


def _avs(tmp_path, videos, frames=5, **changes):
  rng = np.random.default_rng(1)
  arrays = {"logits": rng.standard_normal((videos, frames, 4, 4)).astype(np.float32),
            "masks": (rng.random((videos, frames, 4, 4)) > 0.5).astype(np.float32)}
  np.savez(tmp_path / "p.npz", **dict(arrays, **changes))
  return tmp_path / "p.npz"


def test_avs_video_count_must_match_the_split(tmp_path, avs_meta):
  score.score("avs", _avs(tmp_path, 2), annotations=avs_meta)
  with pytest.raises(score.ScoringError, match=r"p\.npz: 3 predictions for the split's 2 test "
                     r"videos of .*s4_meta_data\.csv"):
    score.score("avs", _avs(tmp_path, 3), annotations=avs_meta, allow_subset=True)
  path = _avs(tmp_path, 1)
  with pytest.raises(score.ScoringError, match=r"predictions for 1 of the split's 2 test videos"):
    score.score("avs", path, annotations=avs_meta)
  assert score.score("avs", path, annotations=avs_meta, allow_subset=True)["subset"] == \
      "scored 1 of 2"
  assert "subset" not in score.score("avs", path)  # no split to compare with


def test_avs_frames_must_be_whole_videos(tmp_path, avs_meta):
  rng = np.random.default_rng(2)
  np.savez(tmp_path / "p.npz", logits=rng.standard_normal((7, 4, 4)),
           masks=np.zeros((7, 4, 4)))
  with pytest.raises(score.ScoringError, match=r"7 frames are not whole videos of 5 frames"):
    score.score("avs", tmp_path / "p.npz", annotations=avs_meta)
  with pytest.raises(score.ScoringError, match=r"logits \(2, 4, 4, 4\) must hold whole videos "
                     r"of 5 frames"):
    score.score("avs", _avs(tmp_path, 2, frames=4))


def test_avs_nonfinite_logits(tmp_path):
  logits = np.zeros((1, 5, 4, 4), np.float32)
  logits[0, 3, 1, 2] = -np.inf
  with pytest.raises(score.ScoringError, match=r"logits holds 1 NaN/Inf value\(s\), the first "
                     r"at index \(0, 3, 1, 2\)"):
    score.score("avs", _avs(tmp_path, 1, logits=logits))


def _ave_rows(tmp_path, pred, target):
  path = tmp_path / "predictions.jsonl"
  path.write_text("".join(json.dumps({"video_id": f"v{i}", "pred": p, "target": t}) + "\n"
                          for i, (p, t) in enumerate(zip(pred, target))))
  return path


@pytest.mark.parametrize("pred, message", [
    ([[0, 29]], r"pred holds 1 id\(s\) outside \[0, 29\), e\.g\. 29 at index \(0, 1\)"),
    ([[-1, 3]], r"pred holds 1 id\(s\) outside \[0, 29\)"),
    ([[0.5, 3]], r"pred must hold integer ids, got dtype float64"),
])
def test_ave_ids_beyond_the_classes(tmp_path, pred, message):
  with pytest.raises(score.ScoringError, match=r"predictions\.jsonl: " + message):
    score.score("ave", _ave_rows(tmp_path, pred, [[0, 28]]))
  assert score.score("ave", _ave_rows(tmp_path, [[0, 28]], [[0, 28]]))["accuracy"] == 100.0


def test_ave_metric_uses_the_runs_class_count():
  config = type("Config", (), {"model": {"num_classes": 4}})()
  metrics = ave_task.AVE(config).metrics()
  metrics.update({"pred": np.array([[4, 0]]), "target": np.array([[4, 1]])})
  with pytest.raises(ValueError, match=r"target holds 1 id\(s\) outside \[0, 5\)"):
    metrics.update({"pred": np.array([[4, 0]]), "target": np.array([[5, 1]])})


def test_missing_files_are_named_once(tmp_path, avqa_split):
  with pytest.raises(score.ScoringError, match=r"^\S*absent\.jsonl: No such file or directory$"):
    score.score("ave", tmp_path / "absent.jsonl")
  with pytest.raises(score.ScoringError, match=r"pred\.json: \S*absent\.json: No such file"):
    score.score("avqa", _json_predictions(tmp_path, [10]), ans_vocab=avqa_split["ans_vocab"],
                annotations=tmp_path / "absent.json")


def test_cli_one_line_failure_and_reported_subset(tmp_path, avqa_split):
  """The CLI: `scoring failed: <file>: <problem>` and exit 1; a subset line and JSON key."""
  run = lambda *flags: subprocess.run(
      [sys.executable, "-m", "dgsct_jax.score", "--task=avqa", "--annotations=~/qa.json",
       "--ans_vocab=~/vocab.txt", *flags], env=dict(os.environ, HOME=str(tmp_path)),
      capture_output=True, text=True, check=False, timeout=300)
  np.savez(tmp_path / "p.npz", logits=np.zeros((4, 42), np.float32) + np.nan)
  done = run(f"--predictions={tmp_path / 'p.npz'}")
  assert done.returncode == 1 and done.stdout == ""
  assert done.stderr.strip().splitlines() == [
      f"scoring failed: {tmp_path / 'p.npz'}: logits holds 168 NaN/Inf value(s), the first at "
      "index (0, 0)"]
  done = run(f"--predictions={_json_predictions(tmp_path, [11, 13])}", "--allow_subset",
             f"--output={tmp_path / 'scores.json'}")
  assert done.returncode == 0, done.stderr
  assert done.stdout.splitlines()[-1] == "subset: scored 2 of 4"
  assert json.loads((tmp_path / "scores.json").read_text())["subset"] == "scored 2 of 4"
