"""AVVP as a Task (scoring; the model comes with the AVVP issue).

Predictions (`python -m dgsct_jax.score --task=avvp --predictions=F`), .npz:
model outputs `global_prob` (N, 25), `a_frame_prob` and `v_frame_prob`
(N, 10, 25) — or binary matrices `so_a`, `so_v` (N, 25, 10) — plus `filenames`
(N,) (default: the `--split` CSV order). The dense GT is built from
`--annotations`/AVVP_eval_{audio,visual}.csv by exact filename, unless the
file holds `gt_a`, `gt_v` (N, 25, 10).
"""
import pathlib

from dgsct_jax.metrics import avvp
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file

SPLIT_CSV = {"val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}


class AVVP(base.Task):
  """Segment- and event-level F of audio, visual and audio-visual events (percent)."""

  name = "avvp"
  scoring_options = ("annotations", "split")

  def metrics(self, **options):
    del options
    return avvp.AVVPMetrics()

  def summary(self, result):
    return avvp.format_scores(result)

  def read_predictions(self, path, annotations=None, split: str = "test"):
    """Rows `so_a`/`so_v` or the model outputs, and `gt_a`/`gt_v` (module docstring)."""
    data = predictions_file.load(path)
    if split not in SPLIT_CSV:
      raise ValueError(f"avvp: split {split!r} has no dense labels; choose {sorted(SPLIT_CSV)}")
    if "filenames" in data:
      filenames = [str(f) for f in data["filenames"]]
    else:
      if annotations is None:
        raise ValueError(f"{path}: give `filenames` in the predictions or --annotations")
      filenames = [f for f, _ in avvp.read_weak_csv(pathlib.Path(annotations) / SPLIT_CSV[split])]
    if "so_a" in data:
      rows = {"so_a": data["so_a"], "so_v": data["so_v"]}
    else:
      predictions_file.need(data, ("global_prob", "a_frame_prob", "v_frame_prob"), path)
      rows = {k: data[k] for k in ("global_prob", "a_frame_prob", "v_frame_prob")}
    if "gt_a" in data:
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
      raise ValueError(f"{path}: {num} predictions for {len(filenames)} videos")
    return rows
