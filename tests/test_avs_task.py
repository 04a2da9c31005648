"""AVS as a Task: the S4 and MS3 losses against PyTorch's, the configs' recipes, and
predictions (per-frame stats) scored again through the scoring CLI's reader. The task
trains end to end in test_task_contract.py."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from configs import avs as avs_config
from dgsct_jax import score
from dgsct_jax import tasks
from dgsct_jax.metrics import avs as avs_metrics
from dgsct_jax.tasks.avs import losses as avs_losses

B, T, H = 2, 5, 16
GRIDS, C = (8, 4, 2, 1), 6


def _outputs(seed):
  rng = np.random.default_rng(seed)
  out = {"pred": (3 * rng.standard_normal((B * T, H, H, 1))).astype(np.float32)}
  for i, g in enumerate(GRIDS, start=1):
    out[f"v_map_stage{i}"] = np.maximum(rng.standard_normal((B * T, g, g, C)), 0).astype(
        np.float32)
    out[f"a_fea_stage{i}"] = rng.standard_normal((B, T, C)).astype(np.float32)
  masks = (rng.random((B, T, H, H)) < 0.3).astype(np.float32)
  return out, masks


def _torch_losses(out, masks, subset):
  """`avs_{s4,ms3}/loss.py::IouSemanticAwareLoss` as train.sh calls it (NCHW)."""
  pred = torch.tensor(out["pred"]).permute(0, 3, 1, 2)                  # (BF, 1, H, W)
  gt = torch.tensor(masks).reshape(B * T, 1, H, H)
  if subset == "s4":  # F1_IoU_BCELoss: frames 0, 5, 10, ... against the first masks
    first = torch.index_select(torch.sigmoid(pred), 0, torch.arange(0, B * T, T))
    return {"bce": torch.nn.BCELoss()(first, gt[::T])}
  bce = torch.nn.BCELoss()(torch.sigmoid(pred), gt)                     # F5_IoU_BCELoss
  kl = 0
  for i in range(1, 5):  # A_MaskedV_SimmLoss(kl_flag=True, norm_fea=False, threshold=False)
    v_map = torch.tensor(out[f"v_map_stage{i}"]).permute(0, 3, 1, 2)
    a_fea = torch.tensor(out[f"a_fea_stage{i}"]).reshape(B * T, -1)
    pooled = torch.sigmoid(torch.nn.AdaptiveAvgPool2d(v_map.shape[-2:])(pred))
    masked = torch.mul(v_map, pooled).mean(-1).mean(-1)
    kl = kl + F.kl_div(masked.softmax(dim=-1).log(), a_fea.softmax(dim=-1), reduction="sum")
  kl = kl / 4
  return {"bce": bce, "kl": kl, "total": bce + 0.5 * kl}


@pytest.mark.parametrize("subset", ["s4", "ms3"])
@pytest.mark.parametrize("seed", [0, 1])
def test_losses_equal_the_reference(subset, seed):
  out, masks = _outputs(seed)
  loss = avs_config.get_config(f"subset={subset},variant=tiny,data=random").loss
  ours = avs_losses.losses(out, masks, **loss)
  want = _torch_losses(out, masks, subset)
  want.setdefault("total", want["bce"])
  assert set(ours) == set(want)
  for k, v in want.items():
    np.testing.assert_allclose(float(ours[k]), float(v), rtol=2e-6, err_msg=k)


def test_s4_loss_sees_only_the_first_frames():
  out, masks = _outputs(2)
  grad = jax.grad(lambda p: avs_losses.losses(dict(out, pred=p), masks)["total"])(
      jnp.asarray(out["pred"]))
  per_frame = np.abs(np.asarray(grad)).reshape(B, T, -1).sum(-1)
  assert (per_frame[:, 0] > 0).all() and (per_frame[:, 1:] == 0).all()
  with pytest.raises(ValueError, match="bce_frames"):
    avs_losses.losses(out, masks, bce_frames="last")


def test_configs_carry_the_recipes():
  s4 = avs_config.get_config("subset=s4")
  ms3 = avs_config.get_config("subset=ms3,clean")
  assert (s4.optim.lr, s4.batch_size, s4.epochs, s4.data.name) == (3e-4, 8, 15, "avsbench/s4")
  assert (ms3.optim.lr, ms3.batch_size, ms3.epochs, ms3.data.name) == (
      1.5e-4, 2, 30, "avsbench/ms3")
  assert s4.optim.schedule.kind == ms3.optim.schedule.kind == "constant"
  assert s4.model.train_audio_encoder and not ms3.model.train_audio_encoder
  assert (s4.model.head.gamma, ms3.model.head.gamma) == (0.05, 0.1)
  assert (s4.eval.select_split, ms3.eval.select_split) == ("test", "val")
  assert s4.model.encoder_train_mode and not ms3.model.encoder_train_mode
  assert dict(ms3.loss) == {"bce_frames": "all", "kl_weight": 0.5}
  spec = tasks.for_config(s4).batch_spec()
  assert spec["frames"].shape == (5, 3, 224, 224) and spec["masks"].shape == (5, 224, 224)
  with pytest.raises(ValueError, match="choose 'avsbench'"):
    avs_config.get_config("data=ave")
  with pytest.raises(ValueError, match="subset"):
    avs_config.get_config("subset=s5")


def test_prediction_rows_score_as_the_logits(tmp_path):
  """The trainer's rows (per-frame stats) through predictions.jsonl and the scoring CLI give
  the metric of the logits and masks the eval step returned."""
  task = tasks.get("avs")(avs_config.get_config("subset=ms3,variant=tiny,data=random"))
  rng = np.random.default_rng(3)
  logits = (3 * rng.standard_normal((6, T, H, H))).astype(np.float32)
  masks = (rng.random((6, T, H, H)) < 0.3).astype(np.float32)
  masks[1] = 0
  outputs = task.eval_outputs({"pred": jnp.asarray(logits.reshape(-1, H, H, 1))},
                              {"masks": jnp.asarray(masks)})
  outputs = {k: np.asarray(v) for k, v in outputs.items()}
  np.testing.assert_array_equal(outputs["logits"], logits)
  rows = task.prediction_rows(outputs, {"name": np.array([f"v{i}" for i in range(6)])})
  path = tmp_path / "predictions.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  metrics = task.metrics()
  metrics.update(outputs)
  want = avs_metrics.evaluate_dataset(outputs["logits"], outputs["masks"], batch_size=4)
  assert metrics.result() == want
  del want["baseline_miou_per_frame"]  # the rows do not hold the masks
  assert score.score("avs", path) == want
