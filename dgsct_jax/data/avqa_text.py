"""MUSIC-AVQA question tokenisation and vocabularies, exactly as `AVQA_dataset` does it.

Reference: `DG-SCT/AVQA/net_grd_avst/dataloader_avst.py` (= MUSIC-AVQA's), spec
dgsct_tasks.md §3.1:
* tokens = `question_content.rstrip().split(' ')` (single spaces, so a double
  space yields an empty token); the last character of the last token (the "?")
  is cut; every token containing '<' is replaced, in order, by the next entry
  of `templ_values` (a string holding a Python list, `ast.literal_eval`);
* no lower-casing; padding with '<pad>' (id 0) at the end to 14; no truncation
  (a longer question is an error here, the reference would build a longer row);
* question vocabulary = ['<pad>'] + words in order of first appearance over
  avqa-train.json (93); answer vocabulary = answers (`anser`, sic) in order of
  first appearance (42). `ques_vocab.txt` / `ans_vocab.txt` of the release are
  dumps of these lists (the question list written twice).
"""
import ast
from typing import Iterable, Sequence

from dgsct_jax.data import annotations

PAD = "<pad>"
MAX_LEN = 14
NUM_QUESTION_TOKENS = 93
NUM_ANSWERS = 42
KEYS = ("video_id", "question_id", "type", "question_content", "templ_values", "anser")


def _templ_values(sample: dict) -> list:
  try:
    values = ast.literal_eval(sample["templ_values"])
  except (ValueError, SyntaxError) as e:
    raise ValueError(f"question {sample.get('question_id')}: unreadable templ_values "
                     f"{sample['templ_values']!r}") from e
  return list(values)


def question_words(sample: dict) -> list[str]:
  """The reference's token list of one QA sample (before padding)."""
  words = sample["question_content"].rstrip().split(" ")
  words[-1] = words[-1][:-1]
  values = _templ_values(sample)
  p = 0
  for i, word in enumerate(words):
    if "<" in word:
      if p >= len(values):
        raise ValueError(f"question {sample.get('question_id')}: more placeholders than "
                         f"templ_values in {sample['question_content']!r}")
      words[i] = values[p]
      p += 1
  return words


def build_vocabularies(samples: Iterable[dict]) -> tuple[list[str], list[str]]:
  """(question vocabulary, answer vocabulary) in first-appearance order."""
  ques, ans = [PAD], []
  seen_q, seen_a = {PAD}, set()
  for sample in samples:
    for word in question_words(sample):
      if word not in seen_q:
        seen_q.add(word)
        ques.append(word)
    if sample["anser"] not in seen_a:
      seen_a.add(sample["anser"])
      ans.append(sample["anser"])
  return ques, ans


def encode_question(sample: dict, word_to_ix: dict, max_len: int = MAX_LEN) -> list[int]:
  """Token ids padded with 0 at the end to `max_len`."""
  words = question_words(sample)
  if len(words) > max_len:
    raise ValueError(f"question {sample.get('question_id')} has {len(words)} tokens "
                     f"(> {max_len}): {words}")
  unknown = [w for w in words if w not in word_to_ix]
  if unknown:
    raise KeyError(f"question {sample.get('question_id')}: words {unknown} are not in the "
                   "question vocabulary")
  return [word_to_ix[w] for w in words] + [word_to_ix[PAD]] * (max_len - len(words))


def read_vocab_dump(path, size: int) -> list[str]:
  """The first `size` lines of ques_vocab.txt / ans_vocab.txt (the question dump is doubled)."""
  vocab = annotations.read_text(path).split("\n")[:size]
  if len(vocab) < size or any(not w for w in vocab):
    line = vocab.index("") + 1 if "" in vocab else len(vocab) + 1  # The first missing line.
    raise annotations.AnnotationError(
        f"{path}:{line}: expected at least {size} non-empty lines, got {vocab[-3:]}")
  return vocab


def check_vocab(built: Sequence[str], dump: Sequence[str], what: str) -> None:
  """Raises with the first differing index when a built vocabulary differs from its dump."""
  if list(built) != list(dump):
    first = next((i for i, (a, b) in enumerate(zip(built, dump)) if a != b),
                 min(len(built), len(dump)))
    raise annotations.AnnotationError(
        f"{what}: built vocabulary ({len(built)}) differs from the release dump "
        f"({len(dump)}) at index {first}: {built[first] if first < len(built) else None!r} vs "
        f"{dump[first] if first < len(dump) else None!r}")


def check_sample(sample) -> None:
  """ValueError unless `sample` is a QA entry: the `KEYS`, strings where the reference
  splits or parses them, an integer question id, readable template values."""
  if not isinstance(sample, dict):
    raise ValueError(f"expected an object, got {sample!r}")
  missing = [k for k in KEYS if k not in sample]
  if missing:
    raise ValueError(f"lacks keys {missing}")
  for key in KEYS:
    if key != "question_id" and not isinstance(sample[key], str):
      raise ValueError(f"{key} must be a string, got {sample[key]!r}")
  if not isinstance(sample["question_id"], int) or isinstance(sample["question_id"], bool):
    raise ValueError(f"question_id must be an integer, got {sample['question_id']!r}")
  question_words(sample)


def load_json_entries(path) -> list[tuple[int, dict]]:
  """(line, sample) of each QA sample of a MUSIC-AVQA json, checked (`check_sample`).

  A bad file or sample raises `annotations.AnnotationError` naming the file and line.
  """
  entries = annotations.read_json_array(path)
  for i, (line, sample) in enumerate(entries):
    with annotations.located(f"{path}:{line} (entry {i})"):
      check_sample(sample)
  return entries


def load_json(path) -> list[dict]:
  """The QA samples of a MUSIC-AVQA json, checked (`load_json_entries`)."""
  return [sample for _, sample in load_json_entries(path)]
