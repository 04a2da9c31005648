"""AVQA as a Task and its model: the loss against the reference's (PyTorch,
`batch_organize` + CrossEntropyLoss), the config's recipe, the negatives' path through the
plain frozen Swin, predictions scored again through the scoring CLI's reader, and the
MUSIC-AVQA elements fitting the batch. The task trains end to end in
test_task_contract.py; the full-size model is test_dgsct_avqa_golden.py's."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from configs import avqa as avqa_config
from dgsct_jax import score
from dgsct_jax import tasks
from dgsct_jax.metrics import avqa as avqa_metrics
from dgsct_jax.models import presets
from dgsct_jax.tasks.avqa import task as avqa_task

B, T = 3, 10


def _torch_loss(out_qa, posi, nega, answer):
  """`main_avst.py::train`: batch_organize interleaves positive (label 1) and negative
  (label 0) rows; loss = CE(out_qa, answer) + 0.5 · CE(out_match, match_label)."""
  ce = torch.nn.CrossEntropyLoss()
  posi, nega = torch.tensor(posi).reshape(B * T, 2), torch.tensor(nega).reshape(B * T, 2)
  out_match = torch.zeros(2 * B * T, 2)
  labels = torch.zeros(2 * B * T, dtype=torch.long)
  for i in range(B * T):
    out_match[2 * i], out_match[2 * i + 1] = posi[i], nega[i]
    labels[2 * i] = 1
  return ce(torch.tensor(out_qa), torch.tensor(answer)) + 0.5 * ce(out_match, labels)


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_equals_the_reference(seed):
  rng = np.random.default_rng(seed)
  out = {"out_qa": rng.standard_normal((B, 42)).astype(np.float32),
         "out_match_posi": (2 * rng.standard_normal((B, T, 2))).astype(np.float32),
         "out_match_nega": (2 * rng.standard_normal((B, T, 2))).astype(np.float32)}
  answer = rng.integers(0, 42, B)
  loss = avqa_config.get_config("variant=tiny,data=random").loss
  ours = avqa_task.losses(out, jnp.asarray(answer, jnp.int32), **loss)
  want = _torch_loss(out["out_qa"], out["out_match_posi"], out["out_match_nega"], answer)
  np.testing.assert_allclose(float(ours["total"]), float(want), rtol=2e-6)
  np.testing.assert_allclose(float(ours["total"]), float(ours["qa"] + 0.5 * ours["match"]),
                             rtol=1e-6)


def test_config_carries_the_recipe():
  """configs/avqa.py = DG-SCT/AVQA/train.sh (spec dgsct_tasks.md §3.4, §0)."""
  c = avqa_config.get_config("variant=large")
  assert (c.task, c.data.name, c.seed, c.batch_size, c.epochs) == ("avqa", "music_avqa", 1, 8, 80)
  assert (c.optim.name, c.optim.lr, c.optim.accum_steps) == ("adam", 1e-4, 1)
  assert (c.optim.schedule.kind, c.optim.schedule.every, c.optim.schedule.gamma) == ("step", 8, 0.1)
  assert (c.eval.select_split, c.eval.early_stop_epochs, c.loss.match_weight) == ("val", 3, 0.5)
  m = c.model
  assert (m.num_classes, m.logmel_mixup, m.encoder_train_mode, m.pairing) == (42, True, True, "ave")
  assert (m.adapter.num_tokens, m.adapter.num_conv_group, m.adapter.use_bn,
          m.adapter.audio_gate, m.adapter.token_init) == (2, 4, False, False, "zeros")
  assert c.data.source_options.reference_negative_rule is True
  clean = avqa_config.get_config("variant=large,clean")
  assert not clean.data.source_options.reference_negative_rule
  assert not clean.model.encoder_train_mode
  assert (m.head.pack_questions, clean.model.head.pack_questions) == (False, True)
  with pytest.raises(ValueError, match="data='synthetic'"):
    avqa_config.get_config("data=synthetic")


@pytest.fixture(scope="module")
def tiny():
  config = avqa_config.get_config("variant=tiny,data=random,runlocal")
  task = tasks.for_config(config)
  model = task.build_model(nnx.Rngs(0))
  for adapters in (model.vis_adapter_blocks_p1, model.vis_adapter_blocks_p2):
    for adapter in adapters:  # open the zero-initialised gates, so that the adapters act
      adapter.gate.set_value(jnp.ones_like(adapter.gate.get_value()))
  rng = np.random.default_rng(0)
  size = config.model.swin.img_size
  x = {"audio": rng.standard_normal((2, T, 32000)).astype(np.float32) * 0.1,
       "frames": rng.standard_normal((2, T, 3, size, size)).astype(np.float32),
       "negatives": rng.standard_normal((2, T, 3, size, size)).astype(np.float32),
       "question": rng.integers(1, 93, (2, 14)).astype(np.int32)}
  return task, model, {k: jnp.asarray(v) for k, v in x.items()}


@nnx.jit(static_argnames="deterministic")
def _apply(model, x, rngs=None, deterministic=True):
  return model(x["audio"], x["frames"], x["negatives"], x["question"],
               deterministic=deterministic, rngs=rngs, capture=True)


@nnx.jit
def _plain_map_and_grad(model, frames):
  """The plain Swin's final map of `frames` (B·T, N, C) and the gradient of the negatives'
  map with respect to its frames."""
  flat = frames.reshape(-1, *frames.shape[2:])
  plain = model.swin(flat)[0]
  grad = jax.grad(lambda f: model.plain_visual_map(f, deterministic=True, rngs=None).sum())(frames)
  return plain, grad


def test_negatives_go_through_the_plain_swin(tiny):
  """The negative maps are Swin's own final map (no adapters), with no gradient; the
  positive maps are the adapted ones."""
  _, model, x = tiny
  out = _apply(model, x)
  flat = lambda m: m.reshape(-1, *m.shape[2:])
  plain_nega, grad = _plain_map_and_grad(model, x["negatives"])
  plain_posi, _ = _plain_map_and_grad(model, x["frames"])
  np.testing.assert_allclose(flat(out["aux"]["nega_map"]), plain_nega, rtol=1e-5, atol=1e-5)
  assert not np.allclose(flat(out["aux"]["posi_map"]), plain_posi, atol=1e-3)
  assert out["out_qa"].shape == (2, 42) and out["out_match_nega"].shape == (2, T, 2)
  assert not np.any(np.asarray(grad))


def test_swin_train_mode_reaches_the_negatives(tiny):
  """Faithful: the reference's Swin is in train mode for the negatives too (drop path)."""
  _, model, x = tiny
  trained = _apply(model, x, nnx.Rngs(dropout=1), deterministic=False)
  evaluated = _apply(model, x)
  assert not np.allclose(trained["aux"]["nega_map"], evaluated["aux"]["nega_map"], atol=1e-4)


def test_prediction_rows_score_as_the_metric(tiny, tmp_path):
  """eval_outputs → the metric == the rows of predictions.jsonl through the scoring CLI."""
  task, _, _ = tiny
  rng = np.random.default_rng(3)
  n = 40
  outputs = {"out_qa": jnp.asarray(rng.standard_normal((n, 42)), jnp.float32)}
  batch = {"answer": jnp.asarray(rng.integers(0, 3, n), jnp.int32),
           "type_id": jnp.asarray(rng.integers(0, 9, n), jnp.int32)}
  evaluated = {k: np.asarray(v) for k, v in task.eval_outputs(outputs, batch).items()}
  metrics = task.metrics()
  metrics.update(evaluated)
  want = avqa_metrics.avqa_accuracy(
      np.asarray(outputs["out_qa"]).argmax(-1), np.asarray(batch["answer"]),
      [avqa_metrics.QUESTION_TYPES[i] for i in np.asarray(batch["type_id"])])
  result = metrics.result()
  assert {k: result[k] for k in want} == want
  # The majority-answer baseline: each type answered with its most frequent answer.
  answers, types = np.asarray(batch["answer"]), np.asarray(batch["type_id"])
  majority = {t: np.bincount(answers[types == t]).argmax() for t in set(types.tolist())}
  hits = [answers[i] == majority[t] for i, t in enumerate(types)]
  np.testing.assert_allclose(result["baseline/overall"], 100 * np.mean(hits))
  host = {"question_id": np.arange(n), "video_id": np.asarray([f"v{i}" for i in range(n)])}
  rows = task.prediction_rows(evaluated, host)
  assert json.loads(rows[0]["type"]) == list(avqa_metrics.QUESTION_TYPES[evaluated["type"][0]])
  path = tmp_path / "predictions.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert score.score("avqa", path) == result


@pytest.mark.parametrize("arg", ["variant=large", "variant=tiny,data=random,runlocal"])
def test_batch_spec_fits_the_model(arg):
  config = avqa_config.get_config(arg)
  spec = tasks.for_config(config).batch_spec()
  size = config.model.swin.img_size
  assert spec["frames"].shape == spec["negatives"].shape == (T, 3, size, size)
  assert spec["question"].shape == (14,) and spec["question"].maxval == 93
  assert spec["answer"].maxval == config.model.num_classes == 42
  assert config.model.head.visual_dim == presets.avqa(config.model.variant)["head"]["visual_dim"]


def test_figure_shows_the_grounding(tiny, tmp_path):
  """grounding.png: one row per question; a frame is kept where the map is high and
  dimmed where it is low."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from dgsct_jax.data import synthetic_avqa  # pylint: disable=import-outside-toplevel
  from dgsct_jax.tasks.avqa import figure  # pylint: disable=import-outside-toplevel
  task, model, _ = tiny
  source = synthetic_avqa.SyntheticAvqaSource("val", 3)
  task.config.figure.num_questions = 2
  path = task.figure(model, source, tmp_path)
  with Image.open(path) as image:
    assert image.size[::-1] == figure.pixel_size(2, T)
  shaded = figure.attention_overlay(np.ones((4, 4, 3), np.float32), np.asarray([.2, .4, .2, .2]))
  np.testing.assert_allclose(shaded[:2, 2:], 1.0)
  np.testing.assert_allclose(shaded[2:], figure.avs_figure.DIM)
