"""Bad annotation files give one error line naming the file and the line (or HDF5 dataset).

Each case breaks one annotation file of a tiny tree (AVE and AVSBench trees of
their test modules, the MUSIC-AVQA tree of test_data_sources, LLP CSVs written
here) and runs the build command: exit status 1 and an "error: <file>:<line>:
..." line, never a traceback from csv, json, int() or h5py.
"""
import json
import re

import h5py
import numpy as np
import pytest
from test_data_ave_builder import mini_tree
from test_data_avsbench import _tree as avs_tree
from test_data_sources import _write_tree as avqa_tree

from dgsct_jax.data import annotations
from dgsct_jax.data import build
from dgsct_jax.data.datasets.ave import builder as ave


def set_line(path, number: int, text: str):
  """Line `number` (1-based) of a text file replaced by `text`."""
  lines = path.read_text().splitlines()
  lines[number - 1] = text
  path.write_text("\n".join(lines) + "\n")


def replace_bytes(path, old: bytes, new: bytes):
  path.write_bytes(path.read_bytes().replace(old, new, 1))


def truncate(path, size: int):
  path.write_bytes(path.read_bytes()[:size])


def write_h5(path, values):
  path.unlink()
  with h5py.File(path, "w") as f:
    f["order"] = values


def ave_tree(root):
  mini_tree(root, np.random.default_rng(0))


def llp_tree(root):
  """The five LLP CSVs, two train videos, one val, one test; no media."""
  root.mkdir()
  weak = "filename\tevent_labels\n"
  (root / "AVVP_train.csv").write_text(weak + "aaaaaaaaaaa_0_10\tSpeech,Dog\nbbbbbbbbbbb_0_10\tCar\n")
  (root / "AVVP_val_pd.csv").write_text(weak + "ccccccccccc_0_10\tCat\n")
  (root / "AVVP_test_pd.csv").write_text(weak + "ddddddddddd_0_10\tBanjo\n")
  for name in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv"):
    (root / name).write_text("filename\tonset\toffset\tevent_labels\n"
                             "ccccccccccc_0_10\t0\t4\tCat\nddddddddddd_0_10\t2\t10\tBanjo\n")


def avqa_json(root, change=None):
  """The tree of test_data_sources with avqa-val.json rewritten one entry per line (entry i
  on line i + 2), after `change(entry 3)`."""
  samples = avqa_tree(root)
  if change:
    change(samples[3])
  (root / "json" / "avqa-val.json").write_text(
      "[\n" + ",\n".join(json.dumps(s) for s in samples) + "\n]\n")


AVE = "Annotations.txt"
LLP_TRAIN, LLP_AUDIO = "AVVP_train.csv", "AVVP_eval_audio.csv"
S4 = "Single-source/s4_meta_data.csv"
VAL_JSON = "json/avqa-val.json"

# (case, dataset, tree, break the tree, file, the error after "error: <manual>/<file>")
CASES = [
    ("ave_not_int", "ave", ave_tree, lambda r: set_line(r / AVE, 3, "Class 5&vidB&good&two&7"),
     AVE, ":3: StartTime must be an integer, got 'two'"),
    ("ave_fields", "ave", ave_tree, lambda r: set_line(r / AVE, 2, "Class 3&vidA&good&0"),
     AVE, ":2: expected 5 '&'-separated fields, got 'Class 3&vidA&good&0'"),
    ("ave_class", "ave", ave_tree, lambda r: set_line(r / AVE, 4, "Class 99&vidC&good&4&5"),
     AVE, ":4: category 'Class 99' is not in .*categories.txt"),
    ("ave_span", "ave", ave_tree, lambda r: set_line(r / AVE, 4, "Class 0&vidC&good&4&11"),
     AVE, r":4: bad event span \[4, 11\)"),
    ("ave_utf8", "ave", ave_tree, lambda r: replace_bytes(r / AVE, b"vidC", b"vid\xffC"),
     AVE, ":4: not UTF-8 text"),
    ("h5_truncated", "ave", ave_tree, lambda r: truncate(r / "val_order.h5", 300),
     "val_order.h5", ": unreadable HDF5 file"),
    ("h5_not_hdf5", "ave", ave_tree, lambda r: (r / "test_order.h5").write_text("[2]"),
     "test_order.h5", ": unreadable HDF5 file"),
    ("h5_no_dataset", "ave", ave_tree,
     lambda r: h5py.File(r / "train_order.h5", "w").close(),
     "train_order.h5", ": no HDF5 dataset 'order'"),
    ("h5_floats", "ave", ave_tree, lambda r: write_h5(r / "val_order.h5", np.array([1.0, 3.0])),
     "val_order.h5", ": HDF5 dataset 'order' must be a non-empty 1-D integer array"),
    ("h5_range", "ave", ave_tree, lambda r: write_h5(r / "test_order.h5", np.array([2, 7])),
     "test_order.h5", r": HDF5 dataset 'order' holds row indices outside \[0, 4\) .* e.g. 7"),
    ("llp_fields", "llp", llp_tree, lambda r: set_line(r / LLP_TRAIN, 3, "bbbbbbbbbbb_0_10"),
     LLP_TRAIN, ":3: expected 2 tab-separated fields"),
    ("llp_class", "llp", llp_tree,
     lambda r: set_line(r / LLP_TRAIN, 2, "aaaaaaaaaaa_0_10\tSpeech,Dogg"),
     LLP_TRAIN, ":2: unknown class 'Dogg'"),
    ("llp_not_int", "llp", llp_tree,
     lambda r: set_line(r / LLP_AUDIO, 3, "ddddddddddd_0_10\t2\t1O\tBanjo"),
     LLP_AUDIO, ":3: onset/offset must be integers, found '2'/'1O'"),
    ("llp_range", "llp", llp_tree,
     lambda r: set_line(r / LLP_AUDIO, 2, "ccccccccccc_0_10\t-1\t4\tCat"),
     LLP_AUDIO, r":2: onset/offset -1/4 outside \[0, 10\]"),
    ("llp_nul", "llp", llp_tree, lambda r: replace_bytes(r / "AVVP_val_pd.csv", b"Cat", b"C\0t"),
     "AVVP_val_pd.csv", ":2: NUL byte in a text file"),
    ("llp_utf8", "llp", llp_tree, lambda r: replace_bytes(r / LLP_TRAIN, b"Car", b"C\xe9r"),
     LLP_TRAIN, ":3: not UTF-8 text"),
    ("llp_overlap", "llp", llp_tree,
     lambda r: set_line(r / "AVVP_test_pd.csv", 2, "ccccccccccc_0_10\tCat"),
     "AVVP_test_pd.csv", ": 'ccccccccccc_0_10' is also in .*AVVP_val_pd.csv"),
    ("avs_no_split", "avsbench/s4", lambda r: avs_tree(r, "s4"),
     lambda r: set_line(r / S4, 3, "tr1_b,0"), S4, r":3: 2 fields, no 'split' value"),
    ("avs_split", "avsbench/s4", lambda r: avs_tree(r, "s4"),
     lambda r: set_line(r / S4, 2, "-tr0_a,0,dog,dev"), S4, ":2: split 'dev' is not one of"),
    ("avs_name", "avsbench/s4", lambda r: avs_tree(r, "s4"),
     lambda r: set_line(r / S4, 2, ",0,dog,train"), S4, ":2: no video name in column 0"),
    ("avs_utf8", "avsbench/s4", lambda r: avs_tree(r, "s4"),
     lambda r: replace_bytes(r / S4, b"car", b"c\xffr"), S4, ":5: not UTF-8 text"),
    ("json_syntax", "music_avqa", avqa_json,
     lambda r: replace_bytes(r / VAL_JSON, b'"question_id": 3,', b'"question_id": 3,,'),
     VAL_JSON, ":5: not valid JSON: Expecting property name"),
    ("json_key", "music_avqa", lambda r: avqa_json(r, lambda s: s.pop("anser")), lambda r: None,
     VAL_JSON, r":5 \(entry 3\): lacks keys \['anser'\]"),
    ("json_id", "music_avqa", lambda r: avqa_json(r, lambda s: s.update(question_id="3")),
     lambda r: None, VAL_JSON, r":5 \(entry 3\): question_id must be an integer, got '3'"),
    ("json_templ", "music_avqa", lambda r: avqa_json(r, lambda s: s.update(templ_values="[x")),
     lambda r: None, VAL_JSON, r":5 \(entry 3\): question 3: unreadable templ_values"),
    ("json_type", "music_avqa", lambda r: avqa_json(r, lambda s: s.update(type="Audio")),
     lambda r: None, VAL_JSON, r":5 \(entry 3\): malformed node"),
    ("json_modality", "music_avqa",
     lambda r: avqa_json(r, lambda s: s.update(type='["Smell", "Counting"]')), lambda r: None,
     VAL_JSON, r":5 \(entry 3\): unknown modality 'Smell'"),
    ("json_answer", "music_avqa", lambda r: avqa_json(r, lambda s: s.update(anser="maybe")),
     lambda r: None, VAL_JSON, r":5 \(entry 3\): answer 'maybe' is not in the answer vocabulary"),
    ("json_word", "music_avqa",
     lambda r: avqa_json(r, lambda s: s.update(question_content="Is the trumpet playing?")),
     lambda r: None, VAL_JSON, r":5 \(entry 3\): question 3: words \['trumpet'\] are not in"),
    ("vocab_dump", "music_avqa", avqa_json,
     lambda r: (r / "ans_vocab.txt").write_text("yes\nno\n"), "ans_vocab.txt",
     ":3: expected at least 42 non-empty lines"),
]


@pytest.mark.parametrize("case,dataset,tree,breaker,file,message", CASES, ids=[c[0] for c in CASES])
def test_bad_annotation_is_one_error_line_naming_file_and_line(
    case, dataset, tree, breaker, file, message, tmp_path, capsys):
  del case
  manual = tmp_path / "manual"
  tree(manual)
  breaker(manual)
  argv = [f"--dataset={dataset}", f"--manual_dir={manual}", f"--data_dir={tmp_path / 'data'}"]
  assert build.main(argv) == 1
  errors = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1
  assert re.fullmatch(f"error: {re.escape(str(manual / file))}{message}.*", errors[0]), errors[0]


def test_readers_raise_annotation_error(tmp_path):
  ave_tree(tmp_path)
  (tmp_path / "val_order.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(40))
  with pytest.raises(annotations.AnnotationError, match="val_order.h5: unreadable HDF5 file"):
    ave.read_annotations(tmp_path)
  assert issubclass(annotations.AnnotationError, ValueError)


def test_json_entry_lines(tmp_path):
  path = tmp_path / "a.json"
  path.write_text('[{"a": 1},\n\n  {"b": [1,\n 2]}, 3\n, "x"]')
  assert annotations.read_json_array(path) == [(1, {"a": 1}), (3, {"b": [1, 2]}), (4, 3),
                                               (5, "x")]
  path.write_text('{"a": 1}')
  with pytest.raises(annotations.AnnotationError, match="expected a JSON array"):
    annotations.read_json_array(path)
