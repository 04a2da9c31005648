"""AVQA (MUSIC-AVQA) metrics: accuracy per question type, as `main_avst.py::test` reports it.

Spec: dgsct_tasks.md §3.5. Each question has a type pair (modality, subtype).
The reference prints, in percent:
* accuracy per (modality, subtype): correct / count;
* accuracy per modality **pooled** over its subtypes (total correct / total
  count, not the mean of the subtype accuracies);
* "Avg" = overall accuracy over all questions, **not** the mean of the three
  modality accuracies (74.8 vs 76.7 for DG-SCT's own numbers).

Both poolings are named options (`modality_average`, `overall`) so the
alternatives can be printed next to the reference numbers. Types outside the
reference's nine pairs count in the overall accuracy only, as in the reference
(its `if/elif` chain drops them).
"""
import ast
from typing import Iterable, Mapping, Sequence

import numpy as np

from dgsct_jax.metrics import checks

NUM_ANSWERS = 42  # the MUSIC-AVQA answer vocabulary (ans_vocab.txt)
# (modality, subtype) pairs in the order of the reference printout.
QUESTION_TYPES = (
    ("Audio", "Counting"), ("Audio", "Comparative"),
    ("Visual", "Counting"), ("Visual", "Location"),
    ("Audio-Visual", "Existential"), ("Audio-Visual", "Counting"),
    ("Audio-Visual", "Location"), ("Audio-Visual", "Comparative"),
    ("Audio-Visual", "Temporal"))
MODALITIES = ("Audio", "Visual", "Audio-Visual")
# Short keys used in result dicts and logs.
MODALITY_KEYS = {"Audio": "audio", "Visual": "visual", "Audio-Visual": "av"}


def parse_type(value) -> tuple[str, str]:
  """A json `type` field ('["Audio", "Counting"]') or a pair → (modality, subtype)."""
  if isinstance(value, (bytes, np.bytes_)):
    value = value.decode("utf-8")
  if isinstance(value, str):
    value = ast.literal_eval(value)
  if len(value) != 2:
    raise ValueError(f"question type must be a (modality, subtype) pair, got {value!r}")
  return str(value[0]), str(value[1])


def type_id(value) -> int:
  """A question type (json string or pair) → its index in `QUESTION_TYPES`."""
  pair = parse_type(value)
  if pair not in QUESTION_TYPES:
    raise ValueError(f"unknown question type {value!r}; MUSIC-AVQA has {QUESTION_TYPES}")
  return QUESTION_TYPES.index(pair)


def type_key(modality: str, subtype: str) -> str:
  return f"{MODALITY_KEYS.get(modality, modality)}/{subtype.lower()}"


def _labels(predictions) -> np.ndarray:
  p = np.asarray(predictions)
  if p.ndim == 2:  # logits → argmax (ties: the first maximum)
    p = p.argmax(-1)
  if p.ndim != 1:
    raise ValueError(f"predictions must be (N,) answer ids or (N, num_answers) logits, "
                     f"got shape {p.shape}")
  return p


def avqa_accuracy(predictions, answers, types: Sequence, *, modality_average: str = "pooled",
                  overall: str = "all") -> dict[str, float]:
  """Accuracies in percent, keyed `overall`, `audio`, `visual`, `av` and `<modality>/<subtype>`.

  predictions: (N,) answer ids or (N, 42) logits; answers: (N,) ids; types: N
  (modality, subtype) pairs or json type strings, aligned with the predictions
  (the reference aligns the test json order with a batch-1 loader).
  `modality_average="pooled"` (reference) or `"mean"` (unweighted mean of
  subtypes); `overall="all"` (reference "Avg") or `"mean"` (mean of the three
  modalities). Entries for types absent from the data are omitted.
  Also returns `count/<key>` for every key.
  """
  pred, ans = _labels(predictions), np.asarray(answers)
  if ans.shape != pred.shape or len(types) != len(pred):
    raise ValueError(f"predictions {pred.shape}, answers {ans.shape} and {len(types)} types "
                     "must have the same length")
  correct = pred == ans
  pairs = [parse_type(t) for t in types]
  out: dict[str, float] = {}
  per_type: dict[tuple[str, str], tuple[int, int]] = {}
  for pair in QUESTION_TYPES:
    mask = np.array([p == pair for p in pairs], bool)
    if mask.any():
      per_type[pair] = (int(correct[mask].sum()), int(mask.sum()))
      out[type_key(*pair)] = 100 * per_type[pair][0] / per_type[pair][1]
      out[f"count/{type_key(*pair)}"] = per_type[pair][1]
  for modality in MODALITIES:
    sub = [v for k, v in per_type.items() if k[0] == modality]
    if not sub:
      continue
    key = MODALITY_KEYS[modality]
    if modality_average == "pooled":
      out[key] = 100 * sum(c for c, _ in sub) / sum(n for _, n in sub)
    elif modality_average == "mean":
      out[key] = float(np.mean([100 * c / n for c, n in sub]))
    else:
      raise ValueError(f"modality_average must be 'pooled' (reference) or 'mean', "
                       f"got {modality_average!r}")
    out[f"count/{key}"] = sum(n for _, n in sub)
  if overall == "all":
    out["overall"] = 100 * int(correct.sum()) / len(correct) if len(correct) else 0.0
  elif overall == "mean":
    out["overall"] = float(np.mean([out[MODALITY_KEYS[m]] for m in MODALITIES
                                    if MODALITY_KEYS[m] in out]))
  else:
    raise ValueError(f"overall must be 'all' (reference) or 'mean', got {overall!r}")
  out["count/overall"] = len(correct)
  return out


class AVQAMetrics:
  """`avqa_accuracy` over a split given in chunks.

  `update(rows)`: `prediction` (N,) answer ids or finite `logits` (N, num_answers),
  `answer` (N,) ids and `type` (N,) json type strings or indices into `QUESTION_TYPES`,
  aligned; ids are in [0, num_answers). Options are `avqa_accuracy`'s. The result also
  holds `baseline/<key>`: the same accuracies of the majority answer of each type.
  """

  def __init__(self, *, num_answers: int = NUM_ANSWERS, **options):
    self.num_answers = num_answers
    self.options = options
    self.predictions: list[np.ndarray] = []
    self.answers: list[np.ndarray] = []
    self.types: list = []

  def update(self, rows) -> None:
    if "prediction" in rows:
      pred = checks.class_ids(checks.shape(rows["prediction"], "prediction", (None,)),
                              "prediction", self.num_answers)
    elif "logits" in rows:
      pred = _labels(checks.finite(
          checks.shape(rows["logits"], "logits", (None, self.num_answers)), "logits"))
    else:
      raise KeyError(f"avqa rows need `prediction` or `logits`; have {sorted(rows)}")
    answer = checks.class_ids(checks.shape(rows["answer"], "answer", (None,)), "answer",
                              self.num_answers)
    checks.same_length({"prediction": pred, "answer": answer, "type": rows["type"]})
    self.predictions.append(pred)
    self.answers.append(answer)
    types = np.asarray(rows["type"])
    if np.issubdtype(types.dtype, np.integer):
      types = [QUESTION_TYPES[i] for i in checks.class_ids(types, "type", len(QUESTION_TYPES))]
    self.types += list(types)

  def result(self) -> dict[str, float]:
    if not self.predictions:
      raise ValueError("AVQAMetrics.result() called before any update()")
    answers = np.concatenate(self.answers)
    out = avqa_accuracy(np.concatenate(self.predictions), answers, self.types, **self.options)
    baseline = avqa_accuracy(majority_answers(answers, self.types), answers, self.types,
                             **self.options)
    out.update({f"baseline/{k}": v for k, v in baseline.items() if not k.startswith("count/")})
    return out


def majority_answers(answers, types: Sequence) -> np.ndarray:
  """Each question answered with the most frequent answer of its type in `answers` (the
  majority-answer baseline; ties: the smallest id)."""
  answers = np.asarray(answers)
  pairs = [parse_type(t) for t in types]
  out = np.empty_like(answers)
  for pair in set(pairs):
    mask = np.array([p == pair for p in pairs], bool)
    out[mask] = np.bincount(answers[mask]).argmax()
  return out


def answers_to_ids(answers: Iterable[str], vocab: Sequence[str]) -> np.ndarray:
  """Answer strings → ids in `vocab` order, with an error naming the unknown answer."""
  index = {a: i for i, a in enumerate(vocab)}
  out = []
  for a in answers:
    if a not in index:
      raise KeyError(f"answer {a!r} is not in the answer vocabulary ({len(vocab)} entries)")
    out.append(index[a])
  return np.asarray(out, np.int32)


def format_accuracy(acc: Mapping[str, float]) -> str:
  """The reference printout's entries (`%.2f`) on one line, then the majority-answer
  baseline's overall accuracy when `acc` has it."""
  keys = [type_key(*p) for p in QUESTION_TYPES] + ["audio", "visual", "av", "overall"]
  line = ", ".join(f"{k}: {acc[k]:.2f} %" for k in keys if k in acc)
  if "baseline/overall" in acc:
    line += f" (majority answer per type: overall {acc['baseline/overall']:.2f} %)"
  return line
