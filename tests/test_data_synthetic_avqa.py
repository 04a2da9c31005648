"""The MUSIC-AVQA look-alike (dgsct_jax/data/synthetic_avqa.py): its questions are
answerable from what it generates, its answers are not guessable from the question type,
and configs/avqa.py serves it as the task's batch."""
import collections
import json

import numpy as np
import pytest

from configs import avqa as avqa_config
from configs import demo as demo_config
from dgsct_jax import input_pipeline
from dgsct_jax import tasks
from dgsct_jax.data import synthetic_avqa
from dgsct_jax.data import synthetic_llp
from dgsct_jax.metrics import avqa as avqa_metrics

CONFIG = synthetic_avqa.SyntheticAvqaConfig()
SOURCE = synthetic_avqa.SyntheticAvqaSource("test", 160, CONFIG)


def _heard(audio: np.ndarray) -> set[int]:
  """The classes whose tone's fundamental stands out of the noise in some second."""
  bank = synthetic_llp.class_bank(CONFIG)
  spectra = np.abs(np.fft.rfft(audio, axis=-1))                  # (T, S/2 + 1), 1 Hz bins
  noise = np.median(spectra)
  heard = set()
  for c in range(CONFIG.num_classes):
    peak = np.abs(np.fft.rfft(bank.tones[c][:CONFIG.samples_per_segment])).argmax()
    if spectra[:, peak - 15:peak + 16].max() > 50 * noise:
      heard.add(c)
  return heard


def _shape(text: str) -> int:
  return next(i for i, s in enumerate(synthetic_avqa.SHAPES) if text.endswith(f" {s}")
              or f" {s} " in text)


def test_audio_questions_are_answered_by_the_audio():
  """"How many instruments are sounding" = the number of distinct tones in the audio;
  "Is the <shape> playing" = whether that shape's tone is heard."""
  checked = collections.Counter()
  for index in range(len(SOURCE)):
    element = SOURCE[index]
    answer = synthetic_avqa.ANSWERS[element["answer"]]
    heard = _heard(element["audio"])
    kind = tuple(json.loads(element["type"]))
    if kind == ("Audio", "Counting"):
      assert answer == synthetic_avqa.NUMBERS[len(heard) - 1], index
    elif kind == ("Audio-Visual", "Existential"):
      assert answer == ("yes" if _shape(element["question_text"]) in heard else "no"), index
    else:
      continue
    checked[kind] += 1
  assert min(checked.values()) >= 20


def test_elements_have_the_avqa_source_fields_and_are_deterministic():
  a, b = SOURCE[7], SOURCE[7]
  assert set(a) >= {"frames", "negatives", "audio", "question", "answer", "type", "type_id",
                    "question_id", "video_id", "question_text"}
  for key in ("frames", "negatives", "audio", "question"):
    np.testing.assert_array_equal(a[key], b[key])
  assert a["frames"].shape == a["negatives"].shape == (10, 3, 64, 64)
  assert not np.array_equal(a["frames"], a["negatives"])
  words = [synthetic_avqa.WORDS[i] for i in a["question"] if i]
  assert " ".join(words) == a["question_text"] and a["question"].shape == (14,)
  assert a["type_id"] == avqa_metrics.type_id(a["type"]) and a["question_id"] == 7
  assert max(len(synthetic_avqa.WORDS), max(int(SOURCE[i]["question"].max())
                                            for i in range(20)) + 1) <= 93


def test_the_majority_answer_of_each_type_is_far_from_always_right():
  answers = collections.defaultdict(collections.Counter)
  for index in range(len(SOURCE)):
    element = SOURCE[index]
    answers[element["type"]][int(element["answer"])] += 1
  assert len(answers) == len(synthetic_avqa.TEMPLATES)
  for kind, counts in answers.items():
    assert max(counts.values()) / sum(counts.values()) < 0.7, (kind, counts)


def test_bad_configs_name_the_field():
  with pytest.raises(ValueError, match="max_objects"):
    synthetic_avqa.SyntheticAvqaSource("train", 2, synthetic_avqa.SyntheticAvqaConfig(
        max_objects=4))
  with pytest.raises(ValueError, match="num_classes=9"):
    synthetic_avqa.SyntheticAvqaSource("train", 2, synthetic_avqa.SyntheticAvqaConfig(
        num_classes=9))


@pytest.mark.parametrize("config", [avqa_config.get_config("variant=tiny,data=synthetic/avqa"),
                                    demo_config.get_config("task=avqa")], ids=["tiny", "demo"])
def test_configs_serve_the_task_batch(config):
  config.data.sizes = {"train": 2, "val": 2, "test": 2}
  element = input_pipeline.get_source(config, "val")[1]
  for name, field in tasks.for_config(config).batch_spec().items():
    assert np.shape(element[name]) == field.shape, name
