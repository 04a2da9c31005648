"""AVVP as a Task: parse each LLP video into audio, visual and audio-visual events per second.

Training sees weak (video-level) labels only; evaluation scores the dense
per-second audio and visual ground truth with the exact AVVP metric (ten
segment- and event-level F-scores, `metrics.avvp`). Config (configs/avvp.py):
`model` (presets.avvp), `loss.audio_smoothing` / `loss.visual_smoothing` (1.0 /
0.9, the reference's label smoothing), `figure.num_videos` (the event timelines
of predict).

Predictions: `predictions.jsonl` of the trainer (one row per video: `filename`,
`global_prob` (C,), `a_frame_prob`, `v_frame_prob` (10, C), `gt_a`, `gt_v`
(C, 10)) or an .npz (`python -m dgsct_jax.score --task=avvp --predictions=F`):
model outputs `global_prob` (N, C), `a_frame_prob` and `v_frame_prob` (N, 10, C)
— or binary matrices `so_a`, `so_v` (N, C, 10) — plus `filenames` (N,) (default:
the `--split` CSV order). The dense GT is built from
`--annotations`/AVVP_eval_{audio,visual}.csv by exact filename, unless the file
holds `gt_a`, `gt_v` (N, C, 10). With `--annotations` the filenames must be the
split's, each once, and cover it; part of the split is scored only with
`--allow_subset` (and reported as a subset).
"""
import pathlib

import jax
import numpy as np
from flax import nnx

from dgsct_jax.metrics import avvp
from dgsct_jax.models import avvp as avvp_model
from dgsct_jax.tasks import base
from dgsct_jax.tasks import predictions_file
from dgsct_jax.tasks.avvp import figure
from dgsct_jax.tasks.avvp import losses as avvp_losses

SPLIT_CSV = {"val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
OUTPUTS = ("global_prob", "a_frame_prob", "v_frame_prob")
T = avvp.NUM_SEGMENTS


class AVVP(base.Task):
  """Segment- and event-level F of audio, visual and audio-visual events (percent);
  the best checkpoint has the highest segment-level Type@AV (the reference's choice)."""

  name = "avvp"
  selection_metric = "seg_type"
  selection_mode = "max"
  scoring_options = ("annotations", "split", "allow_subset")

  def batch_spec(self) -> dict[str, base.Field]:
    model = self.config.model
    size, c = model.swin.img_size, model.num_classes
    return {
        "frames": base.Field((T, 3, size, size), "float32", base.INPUT),
        "audio": base.Field((T, model.htsat.sample_rate), "float32", base.INPUT),
        "r2p1d": base.Field((T, model.head.st_dim), "float32", base.INPUT),
        "weak": base.Field((c,), "float32", base.TARGET),
        "gt_audio": base.Field((c, T), "uint8", base.TARGET, maxval=2),
        "gt_visual": base.Field((c, T), "uint8", base.TARGET, maxval=2),
        "filename": base.Field((), "str", base.HOST),
    }

  def build_model(self, rngs):
    return avvp_model.AVVPModel(self.config.model, rngs=rngs)

  def apply(self, model, inputs, *, deterministic, rngs):
    return model(inputs["audio"], inputs["frames"], inputs["r2p1d"],
                 deterministic=deterministic, rngs=rngs)

  def losses(self, outputs, batch):
    return avvp_losses.losses(outputs, batch["weak"], **self.config.loss)

  def eval_outputs(self, outputs, batch):
    return dict({k: outputs[k] for k in OUTPUTS}, gt_a=batch["gt_audio"],
                gt_v=batch["gt_visual"])

  def metrics(self, **options):
    """The AVVP metric over the run's classes, or LLP's 25 when scoring."""
    del options
    num_classes = self.config.model.num_classes if self.config is not None else avvp.NUM_CLASSES
    return avvp.AVVPMetrics(num_classes=num_classes)

  def summary(self, result):
    """One line: the ten F-scores (a/v/av/type/event, segment and event level), each level
    next to the baseline's (the split's most frequent class in every segment)."""
    def scores(prefix, level):
      return "/".join(f"{result[f'{prefix}{level}_{k}']:.1f}" for k in avvp.SCORE_KEYS)

    parts = []
    for level, name in (("seg", "segment"), ("evt", "event")):
      part = f"{name} F a/v/av/type/event {scores('', level)}"
      if f"baseline_{level}_type" in result:
        part += f" (baseline {scores('baseline_', level)})"
      parts.append(part)
    return "AVVP " + "; ".join(parts)

  def read_predictions(self, path, annotations=None, split: str = "test", allow_subset=False):
    """Rows `so_a`/`so_v` or the model outputs, and `gt_a`/`gt_v` (module docstring). With
    --annotations, the filenames must be videos of the split, each once, covering it (part
    of it only with `allow_subset`)."""
    data = predictions_file.load(path)
    if split not in SPLIT_CSV:
      raise ValueError(f"avvp: split {split!r} has no dense labels; choose {sorted(SPLIT_CSV)}")
    split_names = None
    if annotations is not None:
      split_names = [f for f, _ in avvp.read_weak_csv(pathlib.Path(annotations) / SPLIT_CSV[split])]
    names_key = next((k for k in ("filenames", "filename") if k in data), None)
    if names_key is not None:
      filenames = [str(f) for f in data[names_key]]
      if split_names is not None:
        predictions_file.check_ids(filenames, split_names, path, names_key)
    elif split_names is not None:
      filenames = split_names
    else:
      raise ValueError(f"{path}: give `filenames` in the predictions or --annotations")
    if "so_a" in data:
      predictions_file.need(data, ("so_a", "so_v"), path)
      rows = {"so_a": data["so_a"], "so_v": data["so_v"]}
    else:
      predictions_file.need(data, OUTPUTS, path)
      rows = {k: data[k] for k in OUTPUTS}
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
      hint = "" if names_key else " (give `filenames` to score part of a split)"
      raise ValueError(f"{path}: {num} predictions for {len(filenames)} videos{hint}")
    if split_names is None:
      return rows
    return predictions_file.covering(rows, path, scored=num, total=len(split_names),
                                     what="videos", allow_subset=allow_subset)

  def figure(self, model, source, workdir) -> pathlib.Path | None:
    """timelines.png: predicted against true audio and visual events of the first videos."""
    num_videos = min(self.config.figure.num_videos, len(source))
    if not num_videos:
      return None
    elements = [source[i] for i in range(num_videos)]
    batch = {k: np.stack([e[k] for e in elements]) for k in ("audio", "frames", "r2p1d")}
    out = jax.tree.map(np.asarray, _predict(model, batch["audio"], batch["frames"],
                                            batch["r2p1d"]))
    rows = [dict({k: out[k][i] for k in OUTPUTS}, filename=e["filename"],
                 gt_audio=e["gt_audio"], gt_visual=e["gt_visual"])
            for i, e in enumerate(elements)]
    return figure.draw(rows, pathlib.Path(workdir) / "timelines.png")


@nnx.jit
def _predict(model, audio, frames, video_st):
  return model(audio, frames, video_st, deterministic=True)
