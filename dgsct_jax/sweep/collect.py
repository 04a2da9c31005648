"""The results of a sweep: its points' result.json gathered into one row per point without
its seed, mean ± sample std over the seeds that finished, and n.

Writes `<root>/results.md` (the best mean of each metric in bold: the task's selection
mode for its selection metric, the highest for the others; the points still missing
listed), `<root>/results.csv` and `<root>/results.png` (the selection metric with its std:
against the swept value when one numeric axis is swept besides the seed, e.g. shots; else
one bar per row). Partial sweeps are collected as they are.
"""
import csv
import dataclasses
import io
import json

from etils import epath
import numpy as np

from dgsct_jax.sweep import plan as plan_lib


BASE = "(base)"  # the label of the row of a sweep over seeds only


@dataclasses.dataclass
class Row:
  label: str  # its overrides but the seed and the names fixed in the whole sweep
  overrides: dict  # the same, as values
  values: dict[str, list[float]]  # metric → one value per finished seed
  planned: int  # points of this row in the plan

  @property
  def n(self) -> int:
    return max((len(v) for v in self.values.values()), default=0)

  def mean(self, metric) -> float:
    return float(np.mean(self.values[metric])) if self.values.get(metric) else float("nan")

  def std(self, metric) -> float:
    values = self.values.get(metric, [])
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def gather(root) -> tuple[plan_lib.Plan, list[Row], list[str], list[str]]:
  """(plan, rows in plan order, metric names, names of the points without a result)."""
  plan = plan_lib.read(root)
  rows: dict[str, Row] = {}
  metrics, missing = [], []
  fixed = plan.fixed_names()
  for point in plan.points:
    label = point.label(fixed) or BASE
    row = rows.setdefault(label, Row(label, {
        k: v for k, v in point.overrides.items()
        if k not in plan_lib.SEED_NAMES and k not in fixed}, {}, 0))
    row.planned += 1
    path = epath.Path(root) / point.name / "result.json"
    if not path.exists():
      missing.append(point.name)
      continue
    for key, value in _metrics(json.loads(path.read_text()), path).items():
      if key not in metrics:
        metrics.append(key)
      row.values.setdefault(key, []).append(value)
  if plan.selection_metric in metrics:  # the metric the task selects on comes first
    metrics.insert(0, metrics.pop(metrics.index(plan.selection_metric)))
  return plan, list(rows.values()), metrics, missing


def _metrics(result: dict, path) -> dict[str, float]:
  """The metric values of a result.json (its floats; the checkpoint step and texts are not)."""
  if not isinstance(result, dict):
    raise ValueError(f"{path}: not a result object")
  return {k: float(v) for k, v in result.items() if isinstance(v, float)}


def best(plan, rows: list[Row], metric: str) -> str | None:
  """The label of the row with the best mean of `metric`."""
  means = {r.label: r.mean(metric) for r in rows if not np.isnan(r.mean(metric))}
  if len(set(means.values())) < 2:  # nothing to choose (e.g. a baseline the same everywhere)
    return None
  pick = min if metric == plan.selection_metric and plan.selection_mode == "min" else max
  return pick(means, key=means.get)


def markdown(plan, rows, metrics, missing) -> str:
  winners = {metric: best(plan, rows, metric) for metric in metrics}

  def cell(row, metric):
    mean, std = row.mean(metric), row.std(metric)
    text = ("–" if np.isnan(mean) else f"{mean:.2f}" if np.isnan(std)
            else f"{mean:.2f} ± {std:.2f}")
    return f"**{text}**" if row.label == winners[metric] else text

  fixed = {k: v for k, v in plan.fixed_names().items() if k not in plan_lib.SEED_NAMES}
  lines = [f"# {plan.config_file}{':' + plan.base_arg if plan.base_arg else ''}", "",
           f"Task `{plan.task}`; mean ± sample std over seeds; n = finished seeds of the "
           "row's planned ones; best mean in bold."
           + (f" Every point: {plan_lib.Point(fixed).name}." if fixed else ""), "",
           "| point | n | " + " | ".join(metrics) + " |",
           "|---|---|" + "---|" * len(metrics)]
  for row in rows:
    lines.append(f"| {row.label} | {row.n}/{row.planned} | "
                 + " | ".join(cell(row, m) for m in metrics) + " |")
  if missing:
    lines += ["", f"Missing ({len(missing)} of {len(plan.points)} points): "
              + ", ".join(f"`{name}`" for name in missing)]
  return "\n".join(lines) + "\n"


def csv_text(rows, metrics) -> str:
  axes = list(dict.fromkeys(k for r in rows for k in r.overrides))
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(["point", *axes, "n", "planned",
                   *[f"{m}_{s}" for m in metrics for s in ("mean", "std")]])
  for row in rows:
    writer.writerow([row.label, *[row.overrides.get(a, "") for a in axes], row.n, row.planned,
                     *[f"{f(m):.6g}" for m in metrics for f in (row.mean, row.std)]])
  return out.getvalue()


def plot(plan, rows, metric, path):
  """The selection metric per row (mean, sample std as error bars)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  rows = [r for r in rows if not np.isnan(r.mean(metric))]
  means = [r.mean(metric) for r in rows]
  errors = [0.0 if np.isnan(r.std(metric)) else r.std(metric) for r in rows]
  axis = _numeric_axis(rows)
  fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5) if axis is None else (6, 4))
  if axis is None:
    ax.barh(range(len(rows)), means, xerr=errors, capsize=3, color="tab:blue")
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel(metric)
  else:
    order = np.argsort([r.overrides[axis] for r in rows])
    ax.errorbar([rows[i].overrides[axis] for i in order], [means[i] for i in order],
                yerr=[errors[i] for i in order], marker="o", capsize=3)
    ax.set_xlabel(plan_lib.short_name(axis))
    ax.set_ylabel(metric)
  ax.set_title(f"{plan.task}: {metric} (mean ± std over seeds)")
  fig.tight_layout()
  image = io.BytesIO()  # through epath, so that a gs:// root works too
  fig.savefig(image, format="png", dpi=100)
  plt.close(fig)
  epath.Path(path).write_bytes(image.getvalue())


def _numeric_axis(rows) -> str | None:
  """The one swept name besides the seed, when all its values are numbers."""
  axes = {k for r in rows for k in r.overrides
          if len({repr(x.overrides.get(k)) for x in rows}) > 1}
  if len(axes) != 1:
    return None
  axis = axes.pop()
  values = [r.overrides.get(axis) for r in rows]
  numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
  return axis if numeric else None


def write(root) -> dict:
  """Writes results.md, results.csv and results.png into `root`; what it wrote and found."""
  plan, rows, metrics, missing = gather(root)
  root = epath.Path(root)
  (root / "results.md").write_text(markdown(plan, rows, metrics, missing))
  (root / "results.csv").write_text(csv_text(rows, metrics))
  written = [str(root / "results.md"), str(root / "results.csv")]
  if metrics and any(r.n for r in rows):
    plot(plan, rows, metrics[0], root / "results.png")
    written.append(str(root / "results.png"))
  return {"written": written, "missing": missing, "rows": len(rows), "metrics": metrics}
