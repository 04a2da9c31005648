r"""Scores saved predictions with a task's metric, exactly as the reference scores them.

    python -m dgsct_jax.score --task=ave --predictions=runs/ave/predictions.jsonl
    python -m dgsct_jax.score --task=avvp --predictions=llp_test.npz \
        --annotations=data/AVVP --split=test
    python -m dgsct_jax.score --task=avs --predictions=s4_test.npz --batch_size=4
    python -m dgsct_jax.score --task=avqa --predictions=avqa_test.npz \
        --annotations=data/AVQA/json/avqa-test.json --ans_vocab=data/AVQA/ans_vocab.txt

`--task` is a registered task or a dotted path (dgsct_jax.tasks). Every task
reads the `predictions.jsonl` that the trainer's predict mode writes; what
else a task reads is in its module docstring (`dgsct_jax/tasks/<task>/task.py`).
The predictions are fed to the same metric accumulator as the training-time
evaluation, which refuses NaN/Inf, probabilities outside [0, 1], ids outside
the task's classes and wrong class counts. Tasks that know their split
(`--annotations`) refuse predictions that do not cover it; `--allow_subset`
scores part of a split and says so (`subset: scored N of M`, also in the
JSON). Prints the task's summary and, with `--output`, writes all values as
JSON. On bad input: one line `scoring failed: <file>: <problem>`, exit status 1.
"""
import json
import os
import pathlib
import sys

from absl import app
from absl import flags

from dgsct_jax import tasks
from dgsct_jax.tasks import predictions_file

_TASK = flags.DEFINE_string("task", None, "task name (ave, avvp, avs, avqa) or dotted path")
_PREDICTIONS = flags.DEFINE_string("predictions", None, "predictions file to score")
_OUTPUT = flags.DEFINE_string("output", None, "optional JSON file for all values")
# Task options; each task says which it reads (`Task.scoring_options`).
OPTIONS = {
    "annotations": flags.DEFINE_string(
        "annotations", None, "avvp: the folder of the LLP CSVs; avqa: the QA json of the split; "
        "avs: the AVSBench meta CSV"),
    "split": flags.DEFINE_enum("split", None, ["val", "test"],
                               "avvp, avs: the split of --annotations (default test)"),
    "ans_vocab": flags.DEFINE_string("ans_vocab", None, "avqa: ans_vocab.txt (answers in order)"),
    "batch_size": flags.DEFINE_integer("batch_size", None,
                                       "avs: test batch size in videos (default 4)"),
    "frames_per_video": flags.DEFINE_integer("frames_per_video", None,
                                             "avs: frames per video (default 5)"),
    "allow_subset": flags.DEFINE_bool(
        "allow_subset", None, "avqa, avvp, avs: score predictions that cover part of the split "
        "of --annotations (reported as `subset`)"),
}


class ScoringError(ValueError):
  """A predictions file that cannot be scored; the message is '<file>: <problem>'."""


def _text(error: Exception) -> str:
  """An exception's message: a KeyError's without the quotes of its repr, an OSError's as
  '<file>: <reason>'."""
  if isinstance(error, KeyError) and error.args:
    return str(error.args[0])
  if isinstance(error, OSError) and error.filename:
    return f"{error.filename}: {error.strerror}"
  return str(error)


def score(task_name: str, predictions, **options) -> dict:
  """Library entry point: the task's metric values on a predictions file, plus `subset`
  ('scored N of M') when the task's split was covered in part (`allow_subset=True`).
  Raises ScoringError naming the file and the problem on bad input."""
  task = tasks.get(task_name)()
  unknown = sorted(set(options) - set(task.scoring_options))
  if unknown:
    raise ValueError(f"task {task_name!r} takes no option(s) {unknown}; its options: "
                     f"{list(task.scoring_options) or 'none'}")
  path = pathlib.Path(predictions).expanduser()
  try:
    rows = task.read_predictions(path, **options)
    metrics = task.metrics(**options)
    metrics.update(rows)
    result = dict(metrics.result())
  except (ValueError, KeyError, OSError) as e:
    text = _text(e)
    raise ScoringError(text if text.startswith(str(path)) else f"{path}: {text}") from e
  if isinstance(rows, predictions_file.Rows) and rows.scored < rows.total:
    result["subset"] = f"scored {rows.scored} of {rows.total}"
  return result


def main(argv):
  del argv
  for flag in (_TASK, _PREDICTIONS):
    if not flag.value:
      raise app.UsageError(f"--{flag.name} is required")
  options = {name: os.path.expanduser(flag.value) if isinstance(flag.value, str) else flag.value
             for name, flag in OPTIONS.items() if flag.value is not None}
  try:
    result = score(_TASK.value, _PREDICTIONS.value, **options)
  except (ValueError, KeyError, OSError) as e:
    print(f"scoring failed: {_text(e)}", file=sys.stderr)
    return 1
  print(tasks.get(_TASK.value)().summary(result))
  if "subset" in result:
    print(f"subset: {result['subset']}")
  if _OUTPUT.value:
    pathlib.Path(_OUTPUT.value).expanduser().write_text(
        json.dumps(result, indent=1, sort_keys=True))
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
