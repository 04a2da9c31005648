"""`sources.get_source` names and errors; `AvqaSource` on a tiny generated MUSIC-AVQA tree."""
import json

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

from dgsct_jax.data import records  # noqa: E402
from dgsct_jax.data import sources  # noqa: E402
from dgsct_jax.data.datasets.build_record import PartialBuildError  # noqa: E402
from dgsct_jax.data.datasets.music_avqa.source import AvqaSource  # noqa: E402

NUM_VIDEOS = 8  # > 7: with one left out, the reference rule (id // 60) must leave video 0
# something to draw.
SIZE = (8, 8)


def _write_tree(root):
  """8 videos of 10 frames (colour = 25·frame + 3·video) and waves; 2 questions per video."""
  vids = [f"v{k:02d}" for k in range(NUM_VIDEOS)]
  samples = []
  for v, vid in enumerate(vids):
    folder = root / "frames" / vid
    folder.mkdir(parents=True)
    for k in range(10):
      colour = np.full((16, 16, 3), 25 * k + 3 * v, np.uint8)
      Image.fromarray(colour).save(folder / f"{k + 1:08d}.jpg", quality=95)
    (root / "audio_wave").mkdir(exist_ok=True)
    np.save(root / "audio_wave" / f"{vid}.npy", np.full(320_000, v, np.float32))
    for q in range(2):
      samples.append({"video_id": vid, "question_id": 2 * v + q, "templ_values": "[]",
                      "question_content": f"Is the {'cello' if q else 'piano'} playing?",
                      "anser": "yes" if (v + q) % 2 else "no", "type": '["Audio", "Counting"]'})
  (root / "json").mkdir()
  (root / "json" / "avqa-val.json").write_text(json.dumps(samples))
  # No train json: the builder takes the vocabulary dumps (release sizes: 93 tokens, 42 answers).
  words = ["<pad>", "Is", "the", "piano", "cello", "playing"]
  (root / "ques_vocab.txt").write_text("\n".join(words + [f"w{k}" for k in range(87)]))
  (root / "ans_vocab.txt").write_text("\n".join(["yes", "no"] + [f"a{k}" for k in range(40)]))
  return samples


def _build(manual, data_dir, **kwargs):
  from dgsct_jax.data.datasets.music_avqa import MusicAvqa  # pylint: disable=g-import-not-at-top
  config = tfds.download.DownloadConfig(manual_dir=str(manual))
  for name in ("qa", "videos"):
    MusicAvqa(config=name, data_dir=str(data_dir), file_format="array_record",
              **(kwargs if name == "videos" else {})).download_and_prepare(download_config=config)


@pytest.fixture(scope="module")
def avqa(tmp_path_factory):
  """(samples, data_dir with everything, data_dir whose videos table lacks video 2)."""
  root = tmp_path_factory.mktemp("avqa")
  samples = _write_tree(root / "manual")
  _build(root / "manual", root / "full")
  (root / "manual" / "audio_wave" / "v02.npy").unlink()
  _build(root / "manual", root / "skipped", skip_bad=True)
  return samples, root / "full", root / "skipped"


def _expected_ids(seed, index, own, num_videos, divisor=60, epoch=0):
  """The reference rule, written out: redraw while id // divisor == own video."""
  rng = np.random.default_rng((seed, epoch, index))
  ids = []
  for _ in range(10):
    frame_id = int(rng.integers(0, 10 * num_videos))
    while frame_id // divisor == own:
      frame_id = int(rng.integers(0, 10 * num_videos))
    ids.append(frame_id)
  return ids


def test_avqa_source_joins_videos_and_draws_seeded_negatives_each_epoch(avqa):
  samples, full, _ = avqa
  src = sources.get_source("music_avqa", "val", full, image_size=SIZE, seed=3)
  videos = records_of(full)
  assert len(src) == len(samples) and list(src.answer_names[:2]) == ["yes", "no"]
  for i in (0, 5, 13):
    el = src[i]
    v = int(samples[i]["video_id"][1:])
    assert el["video_id"] == samples[i]["video_id"]
    assert el["answer"] == ["yes", "no"].index(samples[i]["anser"])
    assert (el["question_id"], el["type"], el["type_id"]) == (
        samples[i]["question_id"], '["Audio", "Counting"]', 0)  # QUESTION_TYPES[0]
    np.testing.assert_array_equal(el["frames"], records.decode_frames(videos[v]["frames"], SIZE))
    np.testing.assert_array_equal(el["audio"], np.full((10, 32_000), v, np.float32))
    ids = _expected_ids(3, i, v, NUM_VIDEOS)
    want = records.decode_frames([videos[j // 10]["frames"][j % 10] for j in ids], SIZE)
    np.testing.assert_array_equal(el["negatives"], want)
    assert src.at_epoch(i, 0).keys() == el.keys()
    np.testing.assert_array_equal(src.at_epoch(i, 0)["negatives"], el["negatives"])
    later = src.at_epoch(i, 2)  # redrawn each epoch, the rest of the element unchanged
    ids = _expected_ids(3, i, v, NUM_VIDEOS, epoch=2)
    want = records.decode_frames([videos[j // 10]["frames"][j % 10] for j in ids], SIZE)
    np.testing.assert_array_equal(later["negatives"], want)
    assert not np.array_equal(later["negatives"], el["negatives"])
    np.testing.assert_array_equal(later["frames"], el["frames"])
  other = sources.get_source("music_avqa", "val", full, image_size=SIZE, seed=4)
  assert not np.array_equal(other[0]["negatives"], src[0]["negatives"])
  plain = sources.get_source("music_avqa", "val", full, image_size=SIZE, negatives=False)
  assert "negatives" not in plain[0]


def test_avqa_config_serves_the_task_batch(avqa):
  """configs/avqa.py on a MUSIC-AVQA build: elements of the AVQA task's batch spec, with
  the config's negative-frame rule."""
  from configs import avqa as avqa_config  # pylint: disable=g-import-not-at-top
  from dgsct_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  from dgsct_jax import tasks  # pylint: disable=g-import-not-at-top
  _, full, _ = avqa
  config = avqa_config.get_config("variant=tiny,clean")
  config.data.data_dir = str(full)
  config.data.splits.train = "val"
  source = input_pipeline.get_source(config, "train")
  assert source.reference_negative_rule is False
  element = source[3]
  for name, field in tasks.for_config(config).batch_spec().items():
    assert np.shape(element[name]) == field.shape, name
    if field.dtype != "str":
      assert np.asarray(element[name]).dtype == np.dtype(field.dtype), name


def records_of(data_dir):
  from dgsct_jax.data.datasets.music_avqa import MusicAvqa  # pylint: disable=g-import-not-at-top
  return MusicAvqa(config="videos", data_dir=str(data_dir)).as_data_source(split="val")


def test_negative_rules():
  src = AvqaSource([], [None] * NUM_VIDEOS)
  draws = {v: np.concatenate([src._negatives(i, v, NUM_VIDEOS) for i in range(200)])
           for v in range(NUM_VIDEOS)}
  for v, ids in draws.items():
    assert (ids // 60 != v).all() and ids.min() >= 0 and ids.max() < 10 * NUM_VIDEOS
  assert (draws[6] // 10 == 6).any()  # The reference rule lets a video be its own negative.
  strict = AvqaSource([], [None] * NUM_VIDEOS, reference_negative_rule=False)
  for v in range(NUM_VIDEOS):
    assert all((strict._negatives(i, v, NUM_VIDEOS) // 10 != v).all() for i in range(50))
  with pytest.raises(ValueError, match="no negative frame can be drawn"):
    AvqaSource([], [None] * 6)._negatives(0, 0, 6)


def test_avqa_source_with_a_skipped_video(avqa, caplog):
  """The questions of the skipped video are dropped (warned, counted); a whole epoch reads."""
  samples, _, skipped = avqa
  src = sources.get_source("music_avqa", "val", skipped, image_size=SIZE)
  assert ("dropped 2 of 16 questions whose video is not in the videos build" in caplog.text
          and "1 videos, e.g. v02" in caplog.text)
  videos = records_of(skipped)
  assert len(videos) == NUM_VIDEOS - 1 and len(src) == len(samples) - 2
  table = [records.as_str(videos[p]["video_id"]) for p in range(len(videos))]
  kept = [row for row, s in enumerate(samples) if s["video_id"] != "v02"]
  for i, row in enumerate(kept):  # Every element of an epoch, negatives from built videos.
    el = src[i]
    position = table.index(samples[row]["video_id"])
    assert el["video_id"] == samples[row]["video_id"]
    np.testing.assert_array_equal(el["frames"],
                                  records.decode_frames(videos[position]["frames"], SIZE))
    ids = _expected_ids(0, row, position, NUM_VIDEOS - 1)
    want = records.decode_frames([videos[j // 10]["frames"][j % 10] for j in ids], SIZE)
    np.testing.assert_array_equal(el["negatives"], want)


def test_avqa_source_of_a_limited_videos_build_and_a_sliced_split(tmp_path, caplog):
  """Questions beyond max_videos_per_split are dropped; a sliced split joins the whole
  split's videos; joined splits are refused."""
  manual, data_dir = tmp_path / "manual", tmp_path / "data"
  samples = _write_tree(manual)
  _build(manual, data_dir, max_videos_per_split=NUM_VIDEOS - 1)
  src = sources.get_source("music_avqa", "val", data_dir, image_size=SIZE, negatives=False)
  assert len(src) == len(samples) - 2 and "dropped 2 of 16 questions" in caplog.text
  assert [src[i]["video_id"] for i in range(len(src))] == [s["video_id"] for s in samples[:-2]]
  sliced = sources.get_source("music_avqa", "val[10:]", data_dir, image_size=SIZE, negatives=False)
  assert [sliced[i]["video_id"] for i in range(len(sliced))] == [
      s["video_id"] for s in samples[10:-2]]
  with pytest.raises(ValueError, match="one split, optionally sliced"):
    sources.get_source("music_avqa", "val+val", data_dir)
  with pytest.raises(PartialBuildError, match=r"music_avqa/videos in .* is a partial build: "
                     r"val: 7 of 8 videos \(1 beyond max_videos_per_split=7\)"):
    sources.get_source("music_avqa", "val", data_dir, allow_partial=False)


def test_too_few_videos_for_negatives_is_an_error_before_the_epoch(tmp_path):
  manual, data_dir = tmp_path / "manual", tmp_path / "data"
  _write_tree(manual)
  _build(manual, data_dir, max_videos_per_split=6)
  with pytest.raises(ValueError, match="no negative frame can be drawn for video 0 among 6"):
    sources.get_source("music_avqa", "val", data_dir, image_size=SIZE)
  assert len(sources.get_source("music_avqa", "val", data_dir, reference_negative_rule=False)) == 12


def test_cli_builds_both_configs_and_reports_bad_media(tmp_path, capsys):
  from dgsct_jax.data import build  # pylint: disable=g-import-not-at-top
  samples = _write_tree(tmp_path / "manual")
  argv = ["--dataset=music_avqa", f"--manual_dir={tmp_path / 'manual'}"]
  assert build.main(argv + [f"--data_dir={tmp_path / 'ok'}"]) == 0
  out = capsys.readouterr().out
  assert "music_avqa/qa built in" in out and "music_avqa/videos built in" in out
  assert len(sources.get_source("music_avqa", "val", tmp_path / "ok", image_size=SIZE)) == len(
      samples)
  bad = tmp_path / "manual" / "audio_wave" / "v02.npy"
  bad.unlink()
  assert build.main(argv + [f"--data_dir={tmp_path / 'strict'}"]) == 1
  err = capsys.readouterr().err
  assert "MUSIC-AVQA videos val video v02" in err and str(bad) in err
  assert build.main(argv + [f"--data_dir={tmp_path / 'skip'}", "--skip_bad"]) == 0
  assert "skipped 1 videos" in capsys.readouterr().out
  assert len(records_of(tmp_path / "skip")) == NUM_VIDEOS - 1


def test_get_source_names_and_errors(tmp_path):
  with pytest.raises(ValueError, match="known: ave, llp, avsbench/s4, avsbench/ms3, music_avqa"):
    sources.get_source("avsbench", "val")
  for name in ("ave", "llp", "avsbench/s4", "avsbench/ms3", "music_avqa"):
    with pytest.raises(FileNotFoundError, match=f"{name}.* is not built in {tmp_path}.*"
                       f"python -m dgsct_jax.data.build --dataset={name}"):
      sources.get_source(name, "val", tmp_path)
  with pytest.raises(ValueError, match="224x224"):
    sources.get_source("avsbench/s4", "val", tmp_path, image_size=(192, 192))
  assert len(sources.get_source("synthetic", "val", size=3)) == 3
