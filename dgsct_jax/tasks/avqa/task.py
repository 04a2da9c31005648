"""AVQA as a Task: answer a question about a music performance (MUSIC-AVQA, 42 answers).

Config (configs/avqa.py): `model` (presets.avqa), `loss.match_weight` (the 0.5 of the
reference's CE on answers + 0.5·CE on matching each frame to its audio, against a
negative frame). A batch holds each question's 10 frames, 10 negative frames and audio,
its token ids, answer and type; the model sees it as one ordinary batch.

Predictions: the trainer's `predictions.jsonl` holds one row per question:
`question_id`, `video_id`, `prediction` (answer id), `answer` and `type` (the json type
string), which score as they are; predict also draws grounding.png (`figure.num_questions`).
Or (`python -m dgsct_jax.score --task=avqa --predictions=F`): .npz
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

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from dgsct_jax.metrics import avqa
from dgsct_jax.models import avqa as avqa_model
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file

T = 10  # one-second segments (frames) per video
MAX_LEN = 14  # question tokens, padded with <pad> = 0 at the end


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


def losses(outputs, answer, *, match_weight: float) -> dict:
  """CE on the answer + match_weight · CE on matching: every (question, second) gives a
  positive row (its frame, label 1) and a negative one (label 0), averaged together."""
  qa = optax.softmax_cross_entropy_with_integer_labels(outputs["out_qa"], answer).mean()
  posi, nega = outputs["out_match_posi"], outputs["out_match_nega"]
  match = jnp.concatenate([
      optax.softmax_cross_entropy_with_integer_labels(posi, jnp.ones(posi.shape[:-1], jnp.int32)),
      optax.softmax_cross_entropy_with_integer_labels(nega, jnp.zeros(nega.shape[:-1], jnp.int32)),
  ]).mean()
  return {"total": qa + match_weight * match, "qa": qa, "match": match}


class AVQA(base.Task):
  """Answer accuracy per question type, per modality and overall (percent); the best
  checkpoint has the highest overall accuracy (the reference's choice, on val)."""

  name = "avqa"
  selection_metric = "overall"
  selection_mode = "max"
  scoring_options = ("annotations", "ans_vocab", "allow_subset")

  def batch_spec(self) -> dict[str, base.Field]:
    model = self.config.model
    size = model.swin.img_size
    return {
        "frames": base.Field((T, 3, size, size), "float32", base.INPUT),
        "negatives": base.Field((T, 3, size, size), "float32", base.INPUT),
        "audio": base.Field((T, model.htsat.sample_rate), "float32", base.INPUT),
        "question": base.Field((MAX_LEN,), "int32", base.INPUT, maxval=model.head.vocab_size),
        "answer": base.Field((), "int32", base.TARGET, maxval=model.num_classes),
        "type_id": base.Field((), "int32", base.TARGET, maxval=len(avqa.QUESTION_TYPES)),
        "question_id": base.Field((), "int32", base.HOST),
        "video_id": base.Field((), "str", base.HOST),
    }

  def build_model(self, rngs):
    return avqa_model.AVQAModel(self.config.model, rngs=rngs)

  def apply(self, model, inputs, *, deterministic, rngs):
    return model(inputs["audio"], inputs["frames"], inputs["negatives"], inputs["question"],
                 deterministic=deterministic, rngs=rngs)

  def losses(self, outputs, batch):
    return losses(outputs, batch["answer"], **self.config.loss)

  def eval_outputs(self, outputs, batch):
    return {"prediction": jnp.argmax(outputs["out_qa"], axis=-1).astype(jnp.int32),
            "answer": batch["answer"], "type": batch["type_id"]}

  def metrics(self, **options):
    del options
    return avqa.AVQAMetrics()

  def prediction_rows(self, outputs, host):
    """One row per question (module docstring), the type as its json string."""
    outputs = dict(outputs, type=np.asarray([json.dumps(avqa.QUESTION_TYPES[i])
                                             for i in outputs["type"]]))
    return super().prediction_rows(outputs, host)

  def summary(self, result):
    return avqa.format_accuracy(result)

  def figure(self, model, source, workdir) -> pathlib.Path | None:
    """grounding.png: the audio-guided grounding over the frames of the first questions,
    titled with the question, the predicted and the true answer."""
    # Imported here: matplotlib is for predict only, not for scoring.
    from dgsct_jax.tasks.avqa import figure  # pylint: disable=import-outside-toplevel
    num_questions = min(self.config.figure.num_questions, len(source))
    if not num_questions:
      return None
    elements = [source[i] for i in range(num_questions)]
    stack = lambda key: jnp.asarray(np.stack([e[key] for e in elements]))
    logits, grounding = _predict(model, stack("audio"), stack("frames"), stack("negatives"),
                                 stack("question"))
    rows = [{"question_text": e["question_text"], "frames": e["frames"],
             "grounding": np.asarray(grounding[i]), "prediction": int(np.argmax(logits[i])),
             "answer": int(e["answer"])} for i, e in enumerate(elements)]
    return figure.draw(rows, pathlib.Path(workdir) / "grounding.png",
                       answer_names=getattr(source, "answer_names", None))

  def read_predictions(self, path, annotations=None, ans_vocab=None, allow_subset=False):
    """Rows `prediction` (or `logits`), `answer` and `type` (module docstring). With
    --annotations, the predictions must answer every question of the json (a subset
    only with `allow_subset`)."""
    data = predictions_file.load(path)
    if "prediction" in data:  # the trainer's predictions.jsonl: rows as they are
      predictions_file.need(data, ("prediction", "answer", "type"), path)
      data = {"predictions": data["prediction"], "answers": data["answer"],
              "types": data["type"], **({"question_ids": data["question_id"]}
                                         if "question_id" in data else {})}
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


@nnx.jit
def _predict(model, audio, frames, negatives, question):
  """(answer logits (B, 42), grounding maps (B, T, N)) in evaluation."""
  out = model(audio, frames, negatives, question, deterministic=True, capture=True)
  grounding = out["inter"]["grounding_posi"][:, 0]
  return out["out_qa"], grounding.reshape(*frames.shape[:2], -1)
