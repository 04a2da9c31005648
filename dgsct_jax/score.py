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
evaluation. Prints the task's summary and, with `--output`, writes all values
as JSON. Exit status 1 with a message naming the file or key on bad input.
"""
import json
import pathlib
import sys

from absl import app
from absl import flags

from dgsct_jax import tasks

_TASK = flags.DEFINE_string("task", None, "task name (ave, avvp, avs, avqa) or dotted path")
_PREDICTIONS = flags.DEFINE_string("predictions", None, "predictions file to score")
_OUTPUT = flags.DEFINE_string("output", None, "optional JSON file for all values")
# Task options; each task says which it reads (`Task.scoring_options`).
OPTIONS = {
    "annotations": flags.DEFINE_string(
        "annotations", None, "avvp: the folder of the LLP CSVs; avqa: the QA json of the split"),
    "split": flags.DEFINE_enum("split", None, ["val", "test"], "avvp: split CSV for the order"),
    "ans_vocab": flags.DEFINE_string("ans_vocab", None, "avqa: ans_vocab.txt (answers in order)"),
    "batch_size": flags.DEFINE_integer("batch_size", None,
                                       "avs: test batch size in videos (default 4)"),
    "frames_per_video": flags.DEFINE_integer("frames_per_video", None,
                                             "avs: frames per video (default 5)"),
}


def score(task_name: str, predictions, **options) -> dict[str, float]:
  """Library entry point: the task's metric values on a predictions file."""
  task = tasks.get(task_name)()
  unknown = sorted(set(options) - set(task.scoring_options))
  if unknown:
    raise ValueError(f"task {task_name!r} takes no option(s) {unknown}; its options: "
                     f"{list(task.scoring_options) or 'none'}")
  metrics = task.metrics(**options)
  metrics.update(task.read_predictions(predictions, **options))
  return metrics.result()


def main(argv):
  del argv
  for flag in (_TASK, _PREDICTIONS):
    if not flag.value:
      raise app.UsageError(f"--{flag.name} is required")
  options = {name: flag.value for name, flag in OPTIONS.items() if flag.value is not None}
  try:
    result = score(_TASK.value, _PREDICTIONS.value, **options)
  except (ValueError, KeyError, FileNotFoundError) as e:
    print(f"scoring failed: {e}", file=sys.stderr)
    return 1
  print(tasks.get(_TASK.value)().summary(result))
  if _OUTPUT.value:
    pathlib.Path(_OUTPUT.value).write_text(json.dumps(result, indent=1, sort_keys=True))
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
