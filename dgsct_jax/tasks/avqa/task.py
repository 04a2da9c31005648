"""AVQA as a Task (scoring; the model comes with the AVQA issue).

Predictions (`python -m dgsct_jax.score --task=avqa --predictions=F`): .npz
with `predictions` (N,) answer ids or `logits` (N, 42), in the order of the
`--annotations` json, or re-ordered by `question_ids` (N,) when present
(question ids repeat in MUSIC-AVQA, so a repeated id must stay in json order);
`answers`/`types` in the file override the json. A .json file may instead hold
a list of {"question_id", "answer" (string) or "prediction" (id)}. With
`--annotations` every question of the json must be answered once; part of
the split is scored only with `--allow_subset` (and reported as a subset).
"""
import json
import pathlib

import numpy as np

from dgsct_jax.metrics import avqa
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file


def read_ans_vocab(path) -> list[str]:
  """ans_vocab.txt: one answer per line, in label-index order (MUSIC-AVQA's 42)."""
  vocab = [line for line in pathlib.Path(path).read_text().splitlines() if line]
  if len(vocab) != avqa.NUM_ANSWERS:
    raise ValueError(f"{path}: {len(vocab)} answers, MUSIC-AVQA has {avqa.NUM_ANSWERS}")
  return vocab


def align_by_question_id(samples: list, question_ids, path) -> list:
  """The json samples of the predictions' question ids, in their order.

  `question_id` is not unique in MUSIC-AVQA (27 val and 55 test ids occur twice),
  so ids are only usable when they are in json order already or unambiguous.
  """
  ids = [int(q) for q in question_ids]
  if ids == [int(s["question_id"]) for s in samples]:
    return samples
  by_id: dict[int, list] = {}
  for s in samples:
    by_id.setdefault(int(s["question_id"]), []).append(s)
  predictions_file.check_ids(ids, by_id, path, "question ids")
  ambiguous = [q for q in ids if len(by_id[q]) > 1]
  if ambiguous:
    raise ValueError(f"{path}: question ids {ambiguous[:5]} occur more than once in the "
                     "annotations; save the predictions in json order instead")
  return [by_id[q][0] for q in ids]


def json_predictions(records, vocab, path) -> dict:
  """A json list of {"question_id", "answer" | "prediction"} → `question_ids`, `predictions`."""
  if not isinstance(records, list) or not all(
      isinstance(r, dict) and "question_id" in r and ("answer" in r or "prediction" in r)
      for r in records):
    raise ValueError(f"{path}: expected a list of {{'question_id', 'answer' or 'prediction'}}")
  data = {"question_ids": np.array([r["question_id"] for r in records])}
  if all("prediction" in r for r in records):
    data["predictions"] = np.array([r["prediction"] for r in records])
  elif vocab is None:
    raise ValueError(f"{path}: answer strings need --ans_vocab")
  else:
    data["predictions"] = avqa.answers_to_ids([r.get("answer") for r in records], vocab)
  return data


class AVQA(base.Task):
  """Answer accuracy per question type, per modality and overall (percent)."""

  name = "avqa"
  scoring_options = ("annotations", "ans_vocab", "allow_subset")

  def metrics(self, **options):
    del options
    return avqa.AVQAMetrics()

  def summary(self, result):
    return avqa.format_accuracy(result)

  def read_predictions(self, path, annotations=None, ans_vocab=None, allow_subset=False):
    """Rows `prediction` (or `logits`), `answer` and `type` (module docstring). With
    --annotations, the predictions must answer every question of the json (a subset
    only with `allow_subset`)."""
    data = predictions_file.load(path)
    vocab = read_ans_vocab(ans_vocab) if ans_vocab else None
    if "json" in data:
      data = json_predictions(data["json"], vocab, path)
    key = "predictions" if "predictions" in data else "logits"
    predictions_file.need(data, (key,), path)
    rows = {"prediction" if key == "predictions" else "logits": data[key]}
    given = "answers" in data and "types" in data
    if given:
      rows.update(answer=data["answers"], type=data["types"])
    if annotations is None:
      if given:
        return rows
      raise ValueError(f"{path}: give `answers`/`types` in the predictions or --annotations "
                       "and --ans_vocab")
    samples = json.loads(pathlib.Path(annotations).read_text())
    total = len(samples)
    if "question_ids" in data:
      samples = align_by_question_id(samples, data["question_ids"], path)
    elif len(data[key]) != total:
      raise ValueError(f"{path}: {len(data[key])} predictions for the {total} questions of "
                       f"{annotations} (give `question_ids` to score part of a split)")
    if not given:
      if vocab is None:
        raise ValueError(f"{path}: the answers of {annotations} need --ans_vocab")
      rows.update(answer=avqa.answers_to_ids([s["anser"] for s in samples], vocab),
                  type=np.asarray([s["type"] for s in samples]))
    return predictions_file.covering(rows, path, scored=len(samples), total=total,
                                     what="questions", allow_subset=allow_subset)
