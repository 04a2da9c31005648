r"""Scores saved predictions with the reference metrics of AVVP, AVS or AVQA.

    python -m dgsct_jax.evaluate --task=avvp --predictions=llp_test.npz \
        --annotations=data/AVVP --split=test
    python -m dgsct_jax.evaluate --task=avs --predictions=s4_test.npz --batch_size=4
    python -m dgsct_jax.evaluate --task=avqa --predictions=avqa_test.npz \
        --annotations=data/AVQA/json/avqa-test.json --ans_vocab=data/AVQA/ans_vocab.txt

What each `--predictions` file must hold (.npz unless noted):
* avvp: model outputs `global_prob` (N, 25), `a_frame_prob` and `v_frame_prob`
  (N, 10, 25) — or binary matrices `so_a`, `so_v` (N, 25, 10) — plus
  `filenames` (N,) (default: the `--split` CSV order). The dense GT is built
  from `--annotations`/AVVP_eval_{audio,visual}.csv by exact filename, unless
  the file holds `gt_a`, `gt_v` (N, 25, 10).
* avs: `logits` and binary `masks`, (videos, T, H, W) in CSV order. Batching
  is the reference test loader's (`--batch_size` videos, default 4).
* avqa: `predictions` (N,) answer ids or `logits` (N, 42), in the order of the
  `--annotations` json, or re-ordered by `question_ids` (N,) when present
  (question ids repeat in MUSIC-AVQA, so a repeated id must stay in json order);
  `answers`/`types` in the file override the json. A .json file may instead
  hold a list of {"question_id", "answer" (string) or "prediction" (id)}.

Prints the reference's summary lines and, with `--output`, writes all values
(percent) as JSON.
"""
import json
import pathlib
import sys

import numpy as np
from absl import app
from absl import flags

from dgsct_jax.metrics import avqa
from dgsct_jax.metrics import avs
from dgsct_jax.metrics import avvp

_TASK = flags.DEFINE_enum("task", None, ["avvp", "avs", "avqa"], "which task's metric")
_PREDICTIONS = flags.DEFINE_string("predictions", None, ".npz (or .json for avqa) to score")
_ANNOTATIONS = flags.DEFINE_string(
    "annotations", None, "avvp: the folder of the LLP CSVs; avqa: the QA json of the split")
_SPLIT = flags.DEFINE_enum("split", "test", ["val", "test"], "avvp: split CSV for the order")
_ANS_VOCAB = flags.DEFINE_string("ans_vocab", None, "avqa: ans_vocab.txt (42 answers in order)")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "avs: test batch size in videos")
_FRAMES = flags.DEFINE_integer("frames_per_video", 5, "avs: frames per video")
_OUTPUT = flags.DEFINE_string("output", None, "optional JSON file for all values")

AVVP_SPLIT_CSV = {"val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}


def _load(path) -> dict:
  path = pathlib.Path(path)
  if path.suffix == ".json":
    return {"json": json.loads(path.read_text())}
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def _need(data: dict, keys, path) -> None:
  missing = [k for k in keys if k not in data]
  if missing:
    raise KeyError(f"{path}: missing arrays {missing} (found {sorted(data)})")


def evaluate_avvp(data: dict, annotations=None, split: str = "test") -> dict[str, float]:
  """AVVP scores from a predictions dict (see the module docstring)."""
  if "filenames" in data:
    filenames = [str(f) for f in data["filenames"]]
  else:
    if annotations is None:
      raise ValueError("avvp: give `filenames` in the predictions or --annotations")
    filenames = [f for f, _ in avvp.read_weak_csv(
        pathlib.Path(annotations) / AVVP_SPLIT_CSV[split])]
  if "so_a" in data:
    so_a, so_v = data["so_a"], data["so_v"]
  else:
    _need(data, ("global_prob", "a_frame_prob", "v_frame_prob"), "predictions")
    so_a, so_v = avvp.frame_predictions(data["global_prob"], data["a_frame_prob"],
                                        data["v_frame_prob"])
  if "gt_a" in data:
    gt_a, gt_v = data["gt_a"], data["gt_v"]
  else:
    if annotations is None:
      raise ValueError("avvp: give `gt_a`/`gt_v` in the predictions or --annotations")
    root = pathlib.Path(annotations)
    gt_a = avvp.dense_ground_truth(filenames, avvp.read_dense_csv(root / "AVVP_eval_audio.csv"))
    gt_v = avvp.dense_ground_truth(filenames, avvp.read_dense_csv(root / "AVVP_eval_visual.csv"))
  if len(filenames) != len(so_a):
    raise ValueError(f"avvp: {len(so_a)} predictions for {len(filenames)} videos")
  return avvp.avvp_scores(so_a, so_v, gt_a, gt_v)


def evaluate_avs(data: dict, batch_size: int = 4, frames_per_video: int = 5) -> dict[str, float]:
  _need(data, ("logits", "masks"), "predictions")
  return avs.evaluate_dataset(data["logits"], data["masks"], batch_size=batch_size,
                              frames_per_video=frames_per_video)


def read_ans_vocab(path) -> list[str]:
  """ans_vocab.txt: one answer per line, in label-index order."""
  return [line for line in pathlib.Path(path).read_text().splitlines() if line]


def _align_by_question_id(samples: list, question_ids, source) -> list:
  """Re-orders the json samples to the predictions' question ids.

  `question_id` is not unique in MUSIC-AVQA (27 val and 55 test ids occur twice),
  so ids are only usable when they are in json order already or unambiguous.
  """
  ids = [int(q) for q in question_ids]
  if ids == [int(s["question_id"]) for s in samples]:
    return samples
  by_id: dict[int, list] = {}
  for s in samples:
    by_id.setdefault(int(s["question_id"]), []).append(s)
  missing = [q for q in ids if q not in by_id]
  if missing:
    raise KeyError(f"avqa: question ids {missing[:5]} are not in {source}")
  ambiguous = [q for q in ids if len(by_id[q]) > 1]
  if ambiguous:
    raise ValueError(f"avqa: question ids {ambiguous[:5]} occur more than once in {source}; "
                     "save the predictions in json order instead")
  return [by_id[q][0] for q in ids]


def evaluate_avqa(data: dict, annotations=None, ans_vocab=None) -> dict[str, float]:
  """AVQA accuracies from a predictions dict (see the module docstring)."""
  samples = json.loads(pathlib.Path(annotations).read_text()) if annotations else None
  vocab = read_ans_vocab(ans_vocab) if ans_vocab else None
  if "json" in data:  # list of {"question_id", "answer" | "prediction"}
    rows = data["json"]
    data = {"question_ids": np.array([r["question_id"] for r in rows])}
    if all("prediction" in r for r in rows):
      data["predictions"] = np.array([r["prediction"] for r in rows])
    else:
      if vocab is None:
        raise ValueError("avqa: answer strings need --ans_vocab")
      data["predictions"] = avqa.answers_to_ids([r["answer"] for r in rows], vocab)
  preds = data["predictions"] if "predictions" in data else data.get("logits")
  if preds is None:
    raise KeyError("avqa: the predictions need `predictions` or `logits`")
  if "answers" in data and "types" in data:
    return avqa.avqa_accuracy(preds, data["answers"], [avqa.parse_type(t) for t in data["types"]])
  if samples is None or vocab is None:
    raise ValueError("avqa: give `answers`/`types` in the predictions or --annotations "
                     "and --ans_vocab")
  if "question_ids" in data:
    samples = _align_by_question_id(samples, data["question_ids"], annotations)
  if len(samples) != len(preds):
    raise ValueError(f"avqa: {len(preds)} predictions for {len(samples)} questions")
  answers = avqa.answers_to_ids([s["anser"] for s in samples], vocab)
  return avqa.avqa_accuracy(preds, answers, [s["type"] for s in samples])


def evaluate(task: str, predictions, **kwargs) -> dict[str, float]:
  """Library entry point of the CLI: `task` in {avvp, avs, avqa}, `predictions` a path."""
  data = _load(predictions)
  if task == "avvp":
    return evaluate_avvp(data, kwargs.get("annotations"), kwargs.get("split", "test"))
  if task == "avs":
    return evaluate_avs(data, kwargs.get("batch_size", 4), kwargs.get("frames_per_video", 5))
  if task == "avqa":
    return evaluate_avqa(data, kwargs.get("annotations"), kwargs.get("ans_vocab"))
  raise ValueError(f"unknown task {task!r}")


def _summary(task: str, scores: dict) -> str:
  if task == "avvp":
    return avvp.format_scores(scores)
  if task == "avs":
    return (f"M_J (mIoU) {scores['miou']:.2f}  M_F {scores['fmeasure']:.2f}  "
            f"[per-frame mIoU {scores['miou_per_frame']:.2f}, "
            f"batch-free M_F {scores['fmeasure_dataset']:.2f}]")
  return avqa.format_accuracy(scores)


def main(argv):
  del argv
  for flag in (_TASK, _PREDICTIONS):
    if not flag.value:
      raise app.UsageError(f"--{flag.name} is required")
  try:
    scores = evaluate(_TASK.value, _PREDICTIONS.value, annotations=_ANNOTATIONS.value,
                      split=_SPLIT.value, ans_vocab=_ANS_VOCAB.value,
                      batch_size=_BATCH_SIZE.value, frames_per_video=_FRAMES.value)
  except (ValueError, KeyError, FileNotFoundError) as e:
    print(f"evaluate failed: {e}", file=sys.stderr)
    return 1
  print(_summary(_TASK.value, scores))
  if _OUTPUT.value:
    pathlib.Path(_OUTPUT.value).write_text(json.dumps(scores, indent=1, sort_keys=True))
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
