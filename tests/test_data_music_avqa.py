"""MUSIC-AVQA: tokenisation and vocabularies on the real jsons, QA build, tiny video build."""
import collections
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

from dgsct_jax.data import avqa_text  # noqa: E402
from dgsct_jax.metrics import avqa as avqa_metrics  # noqa: E402

# spec §3.1: question counts per (modality, subtype) and split.
TYPE_COUNTS = {
    "test": {("Audio", "Counting"): 1022, ("Audio", "Comparative"): 601,
             ("Visual", "Counting"): 1199, ("Visual", "Location"): 1228,
             ("Audio-Visual", "Existential"): 995, ("Audio-Visual", "Counting"): 1274,
             ("Audio-Visual", "Location"): 927, ("Audio-Visual", "Comparative"): 1115,
             ("Audio-Visual", "Temporal"): 824},
    "val": {("Audio", "Counting"): 515, ("Audio", "Comparative"): 299,
            ("Visual", "Counting"): 600, ("Visual", "Location"): 614,
            ("Audio-Visual", "Existential"): 499, ("Audio-Visual", "Counting"): 635,
            ("Audio-Visual", "Location"): 462, ("Audio-Visual", "Comparative"): 557,
            ("Audio-Visual", "Temporal"): 414},
}


def test_vocab_dumps_and_tokenisation(avqa_dir):
  ques = avqa_text.read_vocab_dump(avqa_dir / "ques_vocab.txt", 93)
  ans = avqa_text.read_vocab_dump(avqa_dir / "ans_vocab.txt", 42)
  lines = (avqa_dir / "ques_vocab.txt").read_text().split("\n")
  assert lines[:93] == lines[93:186]                       # the list is written twice
  assert ques[:5] == ["<pad>", "How", "many", "instruments", "are"]
  assert ans[:5] == ["two", "cello", "congas", "zero", "no"]
  assert len(set(ques)) == 93 and len(set(ans)) == 42
  w2i = {w: i for i, w in enumerate(ques)}
  for split, n_qa, n_videos in (("val", 4595, 3815), ("test", 9185, 6399)):
    samples = avqa_text.load_json(avqa_dir / f"avqa-{split}.json")
    assert len(samples) == n_qa and len({s["video_id"] for s in samples}) == n_videos
    lengths = [len(avqa_text.question_words(s)) for s in samples]
    assert max(lengths) == 14                              # no truncation needed
    for s in samples[:50]:
      ids = avqa_text.encode_question(s, w2i)
      assert len(ids) == 14 and ids[len(avqa_text.question_words(s)):] == [0] * (
          14 - len(avqa_text.question_words(s)))
    answers = collections.Counter(s["anser"] for s in samples)
    assert set(answers) <= set(ans)
    if split == "test":
      assert "ten" not in answers
  # The first test question, tokenised by hand.
  s = avqa_text.load_json(avqa_dir / "avqa-test.json")[0]
  assert avqa_text.question_words(s) == "How many musical instruments were heard throughout the video".split()


def test_template_filling_and_vocab_order():
  samples = [
      {"question_content": "Is the <Object> louder than <Object>?", "templ_values": "['cello', 'piano']",
       "anser": "yes", "question_id": 1, "video_id": "1", "type": '["Audio", "Comparative"]'},
      {"question_content": "Is the  piano playing? ", "templ_values": "[]", "anser": "no",
       "question_id": 2, "video_id": "2", "type": '["Visual", "Location"]'},
  ]
  assert avqa_text.question_words(samples[0]) == ["Is", "the", "cello", "louder", "than", "piano"]
  # Double space → empty token; rstrip, then the last character ("?") is cut.
  assert avqa_text.question_words(samples[1]) == ["Is", "the", "", "piano", "playing"]
  ques, ans = avqa_text.build_vocabularies(samples)
  assert ques == ["<pad>", "Is", "the", "cello", "louder", "than", "piano", "", "playing"]
  assert ans == ["yes", "no"]
  with pytest.raises(ValueError, match="at index 1: 'Is' vs 'Was'"):
    avqa_text.check_vocab(ques, ["<pad>", "Was"], "question vocabulary")


def test_qa_build_on_real_jsons(avqa_dir, tmp_path):
  from dgsct_jax.data.datasets.music_avqa import MusicAvqa
  manual = tmp_path / "manual"
  (manual / "json").mkdir(parents=True)
  for name in ("ques_vocab.txt", "ans_vocab.txt"):
    shutil.copy(avqa_dir / name, manual / name)
  for split in ("val", "test"):
    shutil.copy(avqa_dir / f"avqa-{split}.json", manual / "json" / f"avqa-{split}.json")
  builder = MusicAvqa(config="qa", data_dir=str(tmp_path / "data"), file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual)))
  info = builder.info
  assert set(info.splits) == {"val", "test"}               # no train json here
  assert info.features["answer"].names[:3] == ["two", "cello", "congas"]
  ques = avqa_text.read_vocab_dump(avqa_dir / "ques_vocab.txt", 93)
  for split in ("val", "test"):
    src = builder.as_data_source(split=split)
    raw = json.loads((avqa_dir / f"avqa-{split}.json").read_text())
    assert len(src) == len(raw)
    mods = info.features["modality"].names
    counts = collections.Counter()
    for i in range(0, len(src), 7):                        # every 7th example, for speed
      ex = src[i]
      assert int(ex["question_id"]) == raw[i]["question_id"]
      assert info.features["answer"].names[int(ex["answer"])] == raw[i]["anser"]
      words = [ques[t] for t in ex["question"] if t != 0]
      assert words == avqa_text.question_words(raw[i])
    # Type counts over the whole split equal the spec table.
    for i in range(len(src)):
      ex = src[i]
      sub = ex["subtype"].decode() if isinstance(ex["subtype"], bytes) else ex["subtype"]
      counts[(mods[int(ex["modality"])], sub)] += 1
    assert dict(counts) == TYPE_COUNTS[split]
    # video_index: first-appearance order of the split's videos.
    order = list(dict.fromkeys(r["video_id"] for r in raw))
    assert int(src[100]["video_index"]) == order.index(raw[100]["video_id"])


def _jpeg(seed):
  buf = io.BytesIO()
  Image.fromarray(np.full((8, 8, 3), seed % 256, np.uint8)).save(buf, format="JPEG")
  return buf.getvalue()


def test_videos_build_tiny_tree(avqa_dir, tmp_path):
  from dgsct_jax.data import records
  from dgsct_jax.data.datasets.music_avqa import MusicAvqa, video_list
  manual = tmp_path / "manual"
  (manual / "json").mkdir(parents=True)
  shutil.copy(avqa_dir / "avqa-val.json", manual / "json" / "avqa-val.json")
  vids = video_list(json.loads((avqa_dir / "avqa-val.json").read_text()))[:3]
  counts = {vids[0]: 60, vids[1]: 10, vids[2]: 37}
  for vid, n in counts.items():
    (manual / "frames" / vid).mkdir(parents=True)
    for k in range(1, n + 1):
      (manual / "frames" / vid / f"{k:08d}.jpg").write_bytes(_jpeg(k))
    (manual / "audio_wave").mkdir(exist_ok=True)
    np.save(manual / "audio_wave" / f"{vid}.npy",
            np.arange(320_000, dtype=np.float32) + counts[vid])
  config = tfds.download.DownloadConfig(manual_dir=str(manual))
  builder = MusicAvqa(config="videos", data_dir=str(tmp_path / "data"),
                      file_format="array_record", max_videos_per_split=3)
  builder.download_and_prepare(download_config=config)
  src = builder.as_data_source(split="val")
  assert len(src) == 3
  ex = src[0]
  # 60 frames: the reference reads 1, 7, 14, 20, 27, 33, 40, 46, 53, 60.
  assert [bytes(b) for b in ex["frames"]] == [_jpeg(k) for k in (1, 7, 14, 20, 27, 33, 40, 46, 53, 60)]
  assert int(ex["num_frames"]) == 60 and int(ex["video_index"]) == 0
  np.testing.assert_array_equal(ex["audio"].reshape(-1), np.arange(320_000) + 60.0)
  # Bad input: a wave of the wrong size stops the build, or is skipped and counted.
  np.save(manual / "audio_wave" / f"{vids[2]}.npy", np.zeros(1000, np.float32))
  with pytest.raises(records.BadMediaError, match=vids[2]):
    MusicAvqa(config="videos", data_dir=str(tmp_path / "b"), file_format="array_record",
              max_videos_per_split=3).download_and_prepare(download_config=config)
  lenient = MusicAvqa(config="videos", data_dir=str(tmp_path / "c"),
                      file_format="array_record", max_videos_per_split=3, skip_bad=True)
  lenient.download_and_prepare(download_config=config)
  assert len(lenient.as_data_source(split="val")) == 2 and lenient.skip_report.count() == 1


def test_metric_types_match_builder_modalities():
  assert tuple(m for m, _ in avqa_metrics.QUESTION_TYPES[::2]) == (
      "Audio", "Visual", "Audio-Visual", "Audio-Visual", "Audio-Visual")
