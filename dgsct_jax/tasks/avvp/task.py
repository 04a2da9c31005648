"""AVVP as a Task (scoring; the model comes with the AVVP issue).

Predictions (`python -m dgsct_jax.score --task=avvp --predictions=F`), .npz:
model outputs `global_prob` (N, 25), `a_frame_prob` and `v_frame_prob`
(N, 10, 25) — or binary matrices `so_a`, `so_v` (N, 25, 10) — plus `filenames`
(N,) (default: the `--split` CSV order). The dense GT is built from
`--annotations`/AVVP_eval_{audio,visual}.csv by exact filename, unless the
file holds `gt_a`, `gt_v` (N, 25, 10). With `--annotations` the filenames must
be the split's, each once, and cover it; part of the split is scored only with
`--allow_subset` (and reported as a subset).
"""
import pathlib

from dgsct_jax.metrics import avvp
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file

SPLIT_CSV = {"val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}


class AVVP(base.Task):
  """Segment- and event-level F of audio, visual and audio-visual events (percent)."""

  name = "avvp"
  scoring_options = ("annotations", "split", "allow_subset")

  def metrics(self, **options):
    del options
    return avvp.AVVPMetrics()

  def summary(self, result):
    return avvp.format_scores(result)

  def read_predictions(self, path, annotations=None, split: str = "test", allow_subset=False):
    """Rows `so_a`/`so_v` or the model outputs, and `gt_a`/`gt_v` (module docstring). With
    --annotations, `filenames` must be videos of the split, each once, covering it (part of
    it only with `allow_subset`)."""
    data = predictions_file.load(path)
    if split not in SPLIT_CSV:
      raise ValueError(f"avvp: split {split!r} has no dense labels; choose {sorted(SPLIT_CSV)}")
    split_names = None
    if annotations is not None:
      split_names = [f for f, _ in avvp.read_weak_csv(pathlib.Path(annotations) / SPLIT_CSV[split])]
    if "filenames" in data:
      filenames = [str(f) for f in data["filenames"]]
      if split_names is not None:
        predictions_file.check_ids(filenames, split_names, path, "filenames")
    elif split_names is not None:
      filenames = split_names
    else:
      raise ValueError(f"{path}: give `filenames` in the predictions or --annotations")
    if "so_a" in data:
      predictions_file.need(data, ("so_a", "so_v"), path)
      rows = {"so_a": data["so_a"], "so_v": data["so_v"]}
    else:
      predictions_file.need(data, ("global_prob", "a_frame_prob", "v_frame_prob"), path)
      rows = {k: data[k] for k in ("global_prob", "a_frame_prob", "v_frame_prob")}
    if "gt_a" in data:
      predictions_file.need(data, ("gt_a", "gt_v"), path)
      rows.update(gt_a=data["gt_a"], gt_v=data["gt_v"])
    else:
      if annotations is None:
        raise ValueError(f"{path}: give `gt_a`/`gt_v` in the predictions or --annotations")
      root = pathlib.Path(annotations)
      rows["gt_a"] = avvp.dense_ground_truth(filenames,
                                             avvp.read_dense_csv(root / "AVVP_eval_audio.csv"))
      rows["gt_v"] = avvp.dense_ground_truth(filenames,
                                             avvp.read_dense_csv(root / "AVVP_eval_visual.csv"))
    num = len(next(iter(rows.values())))
    if len(filenames) != num:
      hint = "" if "filenames" in data else " (give `filenames` to score part of a split)"
      raise ValueError(f"{path}: {num} predictions for {len(filenames)} videos{hint}")
    if split_names is None:
      return rows
    return predictions_file.covering(rows, path, scored=num, total=len(split_names),
                                     what="videos", allow_subset=allow_subset)
