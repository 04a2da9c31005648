"""AVQA as a Task (scoring; the model comes with the AVQA issue).

Predictions (`python -m dgsct_jax.score --task=avqa --predictions=F`): .npz
with `predictions` (N,) answer ids or `logits` (N, 42), in the order of the
`--annotations` json, or re-ordered by `question_ids` (N,) when present
(question ids repeat in MUSIC-AVQA, so a repeated id must stay in json order);
`answers`/`types` in the file override the json. A .json file may instead hold
a list of {"question_id", "answer" (string) or "prediction" (id)}.
"""
import json
import pathlib

import numpy as np

from dgsct_jax.metrics import avqa
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file


def read_ans_vocab(path) -> list[str]:
  """ans_vocab.txt: one answer per line, in label-index order."""
  return [line for line in pathlib.Path(path).read_text().splitlines() if line]


def align_by_question_id(samples: list, question_ids, source) -> list:
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


class AVQA(base.Task):
  """Answer accuracy per question type, per modality and overall (percent)."""

  name = "avqa"
  scoring_options = ("annotations", "ans_vocab")

  def metrics(self, **options):
    del options
    return avqa.AVQAMetrics()

  def summary(self, result):
    return avqa.format_accuracy(result)

  def read_predictions(self, path, annotations=None, ans_vocab=None):
    """Rows `prediction` (or `logits`), `answer` and `type` (module docstring)."""
    data = predictions_file.load(path)
    samples = json.loads(pathlib.Path(annotations).read_text()) if annotations else None
    vocab = read_ans_vocab(ans_vocab) if ans_vocab else None
    if "json" in data:  # list of {"question_id", "answer" | "prediction"}
      records = data["json"]
      data = {"question_ids": np.array([r["question_id"] for r in records])}
      if all("prediction" in r for r in records):
        data["predictions"] = np.array([r["prediction"] for r in records])
      else:
        if vocab is None:
          raise ValueError(f"{path}: answer strings need --ans_vocab")
        data["predictions"] = avqa.answers_to_ids([r["answer"] for r in records], vocab)
    key = "predictions" if "predictions" in data else "logits"
    predictions_file.need(data, (key,), path)
    rows = {"prediction" if key == "predictions" else "logits": data[key]}
    if "answers" in data and "types" in data:
      return dict(rows, answer=data["answers"], type=data["types"])
    if samples is None or vocab is None:
      raise ValueError(f"{path}: give `answers`/`types` in the predictions or --annotations "
                       "and --ans_vocab")
    if "question_ids" in data:
      samples = align_by_question_id(samples, data["question_ids"], annotations)
    if len(samples) != len(data[key]):
      raise ValueError(f"{path}: {len(data[key])} predictions for {len(samples)} questions")
    return dict(rows, answer=avqa.answers_to_ids([s["anser"] for s in samples], vocab),
                type=np.asarray([s["type"] for s in samples]))
