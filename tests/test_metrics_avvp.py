"""AVVP metrics: spec §1.4 fixture values on the real LLP CSVs, plus hand-computed cases."""
import numpy as np
import pytest

from dgsct_jax.metrics import avvp

# spec §1.4 [fixture]: weak labels broadcast to all 10 segments, both modalities.
WEAK_BROADCAST = {
    "test": dict(seg_a=76.08, seg_v=60.35, seg_av=52.61, seg_type=63.01, seg_event=71.70,
                 evt_a=63.03, evt_v=55.75, evt_av=44.69, evt_type=54.49, evt_event=61.60),
    "val": dict(seg_a=77.07, seg_v=58.65, seg_av=52.07, seg_type=62.60, seg_event=71.53,
                evt_a=63.85, evt_v=53.48, evt_av=44.15, evt_type=53.82, evt_event=61.12),
}
# spec §1.4 [fixture]: predicting nothing, segment level (A / V / AV / Type / Event).
PREDICT_NOTHING = {"test": (0.50, 10.08, 14.50, 8.36, 0.00),
                   "val": (0.62, 10.79, 14.33, 8.58, 0.00)}
SPLIT_CSV = {"val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}


@pytest.fixture(scope="module")
def llp(annotations_dir):
  root = annotations_dir / "AVVP"
  if not root.is_dir():
    pytest.skip(f"LLP annotations not found at {root}")
  dense = {m: avvp.read_dense_csv(root / f"AVVP_eval_{m}.csv") for m in ("audio", "visual")}
  out = {}
  for split, name in SPLIT_CSV.items():
    weak = avvp.read_weak_csv(root / name)
    names = [w[0] for w in weak]
    out[split] = dict(
        names=names, weak=np.stack([avvp.weak_multi_hot(l) for _, l in weak]),
        gt_a=avvp.dense_ground_truth(names, dense["audio"]),
        gt_v=avvp.dense_ground_truth(names, dense["visual"]))
  out["dense"] = dense
  return out


@pytest.mark.parametrize("split", ["test", "val"])
def test_weak_broadcast_regression(llp, split):
  d = llp[split]
  so = np.repeat(d["weak"][:, :, None], 10, -1)
  scores = avvp.avvp_scores(so, so, d["gt_a"], d["gt_v"])
  for key, want in WEAK_BROADCAST[split].items():
    assert round(scores[key], 2) == pytest.approx(want, abs=1e-9), key


@pytest.mark.parametrize("split", ["test", "val"])
def test_predict_nothing_and_oracle(llp, split):
  d = llp[split]
  zeros = np.zeros_like(d["gt_a"])
  got = avvp.avvp_scores(zeros, zeros, d["gt_a"], d["gt_v"])
  keys = ("seg_a", "seg_v", "seg_av", "seg_type", "seg_event")
  assert tuple(round(got[k], 2) for k in keys) == PREDICT_NOTHING[split]
  oracle = avvp.avvp_scores(d["gt_a"], d["gt_v"], d["gt_a"], d["gt_v"])
  assert all(v == 100.0 for v in oracle.values()), oracle


def test_model_outputs_path_matches_matrices(llp):
  """`evaluate_outputs` on probabilities equal to the weak labels gives the same scores."""
  d = llp["test"]
  frame = np.repeat(d["weak"][:, None, :], 10, 1) * 0.6  # ≥ 0.5 exactly where weak = 1
  got = avvp.evaluate_outputs(d["weak"] * 0.9, frame, frame, d["gt_a"], d["gt_v"])
  assert round(got["seg_type"], 2) == 63.01 and round(got["evt_event"], 2) == 61.60


def test_dense_csv_counts_and_unmatched_filenames(llp):
  """spec §1.4: 10 filenames (17 audio, 11 visual rows) match no val/test video."""
  dense = llp["dense"]
  assert len(dense["audio"]) == 4131 and len({r.filename for r in dense["audio"]}) == 1850
  assert len(dense["visual"]) == 2495 and len({r.filename for r in dense["visual"]}) == 1665
  names = llp["val"]["names"] + llp["test"]["names"]
  un_a = avvp.unmatched_rows(names, dense["audio"])
  un_v = avvp.unmatched_rows(names, dense["visual"])
  assert (len(un_a), len(un_v)) == (17, 11)
  assert {r.filename for r in un_a + un_v} == {
      "19jWnmYnlD8_30_400", "KvIjsmANkxI_10_20`", "VMTJRpjbE_150_160", "Baby_cry_infant_cry",
      "12eWNawPekw_30_40", "AkAfFL5Q4QA_30_40", "17iGUal2M_10_20", "7X3oSVoA_90_100",
      "CSWQ_HzQ_10_20", "P7x4FV4lg_570_580"}
  # Coverage of val/test by the dense files (spec §1.4: rows cover 645/579 val and
  # 1195/1079 test videos). One test video has only a zero-length audio row, so its
  # audio GT is empty: 1194 non-empty.
  for split, rows_cover, nonempty in (("val", (645, 579), (645, 579)),
                                      ("test", (1195, 1079), (1194, 1079))):
    d = llp[split]
    names = set(d["names"])
    assert tuple(len(names & {r.filename for r in dense[m]})
                 for m in ("audio", "visual")) == rows_cover
    assert (int(d["gt_a"].any((1, 2)).sum()), int(d["gt_v"].any((1, 2)).sum())) == nonempty
  # The relabelled Speech rows of JfZEqeLZqWk_30_40 are missing from its GT.
  test = llp["test"]
  i = test["names"].index("JfZEqeLZqWk_30_40")
  assert test["gt_a"][i, avvp.CLASS_INDEX["Speech"]].sum() == 0
  # 127 dense rows carry a class absent from the video's weak label.
  weak = {n: set(np.nonzero(w)[0]) for s in ("val", "test")
          for n, w in zip(llp[s]["names"], llp[s]["weak"])}
  odd = [r for m in ("audio", "visual") for r in dense[m]
         if r.filename in weak and avvp.CLASS_INDEX[r.label] not in weak[r.filename]]
  assert len(odd) == 127


def test_id11_join_recovers_two_typos(llp):
  names = llp["val"]["names"] + llp["test"]["names"]
  un = avvp.unmatched_rows(names, llp["dense"]["audio"], join="id11")
  assert "19jWnmYnlD8_30_400" not in {r.filename for r in un}
  assert "KvIjsmANkxI_10_20`" not in {r.filename for r in un}


# ---------------------------------------------------------------------------
# Hand-computed cases (no annotation files needed)
# ---------------------------------------------------------------------------


def _row(*segments, t=10):
  x = np.zeros((t,), np.uint8)
  for s, e in segments:
    x[s:e] = 1
  return x


def _one(pred_row, gt_row, c=0):
  """A (1, 25, 10) matrix pair with a single non-empty class row."""
  p = np.zeros((1, 25, 10), np.uint8)
  g = np.zeros((1, 25, 10), np.uint8)
  p[0, c], g[0, c] = pred_row, gt_row
  return p, g


def test_segment_counts_and_f():
  p, g = _one(_row((0, 4)), _row((2, 8)))
  tp, fp, fn = avvp.segment_counts(p, g)
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (2, 2, 4)
  # F = 2·2/(2·2 + 2 + 4) = 0.4; the 24 empty classes do not count.
  assert avvp.per_video_f(tp, fp, fn)[0] == pytest.approx(0.4)


def test_empty_video_rule():
  z = np.zeros((2, 25, 10), np.uint8)
  g = z.copy()
  g[1, 3, :5] = 1
  tp, fp, fn = avvp.segment_counts(z, g)
  np.testing.assert_array_equal(avvp.per_video_f(tp, fp, fn), [1.0, 0.0])
  np.testing.assert_array_equal(avvp.per_video_f(tp, fp, fn, empty_video_score=0.0), [0.0, 0.0])
  # Dataset level: video 0 (empty) scores 100, video 1 scores 0 → 50.
  scores = avvp.avvp_scores(z, z, g, z)
  assert scores["seg_a"] == 50.0 and scores["seg_v"] == 100.0 and scores["evt_a"] == 50.0


def test_event_iou_threshold_and_no_one_to_one():
  # Two predicted runs [0,2) and [3,5) against one GT run [0,5): IoUs 2/5 and 2/5 < 0.5.
  tp, fp, fn = avvp.event_counts(*_one(_row((0, 2), (3, 5)), _row((0, 5))))
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (0, 2, 1)
  # Adjacent 1s form one run: [0,3) against GT [0,4) has IoU 3/4 → TP.
  tp, fp, fn = avvp.event_counts(*_one(_row((0, 2), (2, 3)), _row((0, 4))))
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (1, 0, 0)
  # IoU exactly 0.5 counts (≥): pred [0,2) against GT [0,4).
  tp, fp, fn = avvp.event_counts(*_one(_row((0, 2)), _row((0, 4))))
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (1, 0, 0)
  # GT [0,6); pred runs [0,3) (IoU 3/6 ✓) and [4,6) (2/6 ✗): 1 TP, 1 FP, GT found.
  tp, fp, fn = avvp.event_counts(*_one(_row((0, 3), (4, 6)), _row((0, 6))))
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (1, 1, 0)
  # No one-to-one matching: GT [0,10), pred runs [0,4) and [5,9) (IoU 0.4 each). At a
  # threshold of 0.4 both are TPs of the same GT event; at 0.5 both are FPs.
  p, g = _one(_row((0, 4), (5, 9)), _row((0, 10)))
  tp, fp, fn = avvp.event_counts(p, g, iou_threshold=0.4)
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (2, 0, 0)
  tp, fp, fn = avvp.event_counts(p, g)
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (0, 2, 1)
  # GT [0,3) and [4,7), pred [1,6): IoUs 2/6 and 2/6 → one FP and two FNs.
  tp, fp, fn = avvp.event_counts(*_one(_row((1, 6)), _row((0, 3), (4, 7))))
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (0, 1, 2)
  # Same GT, pred [0,4) (IoU 3/4 with [0,3), 0 with [4,7)): TP; [4,7) unmatched → FN.
  tp, fp, fn = avvp.event_counts(*_one(_row((0, 4)), _row((0, 3), (4, 7))))
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (1, 0, 1)


def test_event_run_extraction_edges():
  # Runs touching both ends and single-segment runs.
  p, g = _one(_row((0, 1), (2, 3), (9, 10)), _row((0, 1), (9, 10)))
  tp, fp, fn = avvp.event_counts(p, g)
  assert (tp[0, 0], fp[0, 0], fn[0, 0]) == (2, 1, 0)
  starts, ends, valid = avvp._runs(np.array([[1, 0, 1, 0, 1, 0, 1, 0, 1, 0]], bool))
  assert valid.sum() == 5 and starts[0].tolist() == [0, 2, 4, 6, 8]
  assert ends[0].tolist() == [1, 3, 5, 7, 9]


def test_type_and_event_combination():
  # Audio: perfect on class 0. Visual: prediction on class 1, no GT → F_v = 0.
  so_a, gt_a = _one(_row((0, 10)), _row((0, 10)))
  so_v, gt_v = _one(_row((0, 10)), _row(), c=1)
  s = avvp.avvp_scores(so_a, so_v, gt_a, gt_v)
  assert s["seg_a"] == 100.0 and s["seg_v"] == 0.0
  # AV: SO_av = SO_a·SO_v = 0, GT_av = 0 → empty video → 100.
  assert s["seg_av"] == 100.0
  assert s["seg_type"] == pytest.approx((100 + 0 + 100) / 3)
  # Event combination per class: class 0 F = 1 (10 TP), class 1 F = 0 (10 FP) → 50.
  assert s["seg_event"] == 50.0 and s["evt_event"] == 50.0


def test_micro_average_differs_from_reference():
  z = np.zeros((2, 25, 10), np.uint8)
  p, g = z.copy(), z.copy()
  g[1, 0, :2] = 1
  p[1, 0, :1] = 1      # video 1: TP 1, FN 1 → F 2/3; video 0 empty → 1.0
  assert avvp.avvp_scores(p, z, g, z)["seg_a"] == pytest.approx(100 * (1 + 2 / 3) / 2)
  assert avvp.avvp_scores(p, z, g, z, average="micro")["seg_a"] == pytest.approx(100 * 2 / 3)


def test_frame_predictions_filter_and_threshold():
  glob = np.zeros((1, 25), np.float32)
  glob[0, 0] = 0.5                    # ≥ 0.5 keeps class 0
  glob[0, 1] = 0.49                   # class 1 filtered by the audio-visual head
  a = np.full((1, 10, 25), 0.5, np.float32)
  v = np.full((1, 10, 25), 0.2, np.float32)
  so_a, so_v = avvp.frame_predictions(glob, a, v)
  assert so_a.shape == (1, 25, 10)
  assert so_a[0, 0].sum() == 10 and so_a[0, 1:].sum() == 0 and so_v.sum() == 0
  so_a, _ = avvp.frame_predictions(glob, a, v, video_filter=False)
  assert so_a.sum() == 250


def test_dense_ground_truth_join_and_slicing():
  rows = [avvp.DenseRow("vid_a", 2, 5, "Dog", 2), avvp.DenseRow("vid_a", 3, 3, "Cat", 3),
          avvp.DenseRow("vid_a`", 0, 10, "Car", 4), avvp.DenseRow("vid_b", 0, 1, "Speech", 5)]
  gt = avvp.dense_ground_truth(["vid_a", "vid_c"], rows)
  assert gt[0, avvp.CLASS_INDEX["Dog"]].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]
  assert gt[0].sum() == 3 and gt[1].sum() == 0        # zero-length row and typo ignored
  assert [r.line for r in avvp.unmatched_rows(["vid_a", "vid_c"], rows)] == [4, 5]


def test_bad_csv_errors_name_the_file(tmp_path):
  bad = tmp_path / "eval.csv"
  bad.write_text("filename\tonset\toffset\tevent_labels\nx_1_2\t0\t3\tNotAClass\n")
  with pytest.raises(ValueError, match=r"eval.csv:2: unknown class 'NotAClass'"):
    avvp.read_dense_csv(bad)
  bad.write_text("name\tlabels\n")
  with pytest.raises(ValueError, match="expected a header"):
    avvp.read_weak_csv(bad)


def test_score_cli_library_entry(llp, annotations_dir, tmp_path):
  """`dgsct_jax.score` on saved model outputs, GT from the CSVs, split order by default."""
  from dgsct_jax import score
  y = llp["test"]["weak"]
  path = tmp_path / "pred.npz"
  np.savez(path, global_prob=y, a_frame_prob=np.repeat(y[:, None], 10, 1),
           v_frame_prob=np.repeat(y[:, None], 10, 1))
  scores = score.score("avvp", path, annotations=annotations_dir / "AVVP", split="test")
  assert {k: round(scores[k], 2) for k in avvp.METRIC_NAMES} == WEAK_BROADCAST["test"]
