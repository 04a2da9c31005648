"""Quick supervised pretraining of the tiny encoders, so that frozen means something.

DG-SCT adapts *pretrained* encoders (Swin-V2 on ImageNet-22k, HTS-AT on
AudioSet). The tiny variant has no such checkpoints, so the demo first trains
each tiny encoder alone on the synthetic training split: the Swin-V2 on single
frames, the HTS-AT on single 1-s segments, both classifying the event class of
the segments labelled as events (those show the class's shape and play its
sound). The result is written exactly like a converted real checkpoint
(`weight_conversion.store`: orbax values + manifest with `params_sha256`), and
the DG-SCT run reads it through `config.init_from` like any converted encoder.

    config.pretrain = dict(steps=..., batch_size=..., lr=..., videos=..., eval_videos=...,
                           seed=..., encoders={<init_from name>: dict(arch=..., input=...,
                                                                     final_norm=...)})

Each encoder of `pretrain.encoders` is built as `ENCODERS[arch]` from the model
config section `config.model[init_from.<name>.prefix]`, fed the segments'
`input` field ('frames' or 'audio'), and pooled as the DG-SCT backbone pools it
(`final_norm`: the encoder's final norm first; the backbone applies Swin's, not
HTS-AT's).
"""
import dataclasses
import logging
import pathlib
import time

import jax
import numpy as np
import optax
from flax import nnx

from dgsct_jax import nnx_utils
from dgsct_jax.data import sources
from dgsct_jax.data import synthetic
from dgsct_jax.models import layers
from dgsct_jax.models.encoders import htsat
from dgsct_jax.models.encoders import swinv2

ENCODERS = {"swinv2": swinv2.SwinTransformerV2, "htsat": htsat.HTSAT}


class EncoderClassifier(nnx.Module):
  """A tiny encoder with a linear classifier on its mean-pooled final tokens (all trainable;
  the classifier is dropped afterwards, HTS-AT's own `head` is saved untrained and unused)."""

  def __init__(self, arch: str, encoder_config: dict, num_classes: int, *, final_norm: bool,
               rngs: nnx.Rngs):
    if arch not in ENCODERS:
      raise ValueError(f"pretrain: unknown encoder arch {arch!r}; known: {sorted(ENCODERS)}")
    self.encoder = ENCODERS[arch](**encoder_config, rngs=rngs)
    self.final_norm = final_norm
    self.fc = layers.linear(self.encoder.num_features, num_classes, rngs=rngs)
    layers.mark_trainable(self)

  def __call__(self, x, *, deterministic: bool = True, rngs=None):
    features, _ = self.encoder(x, deterministic=deterministic, rngs=rngs)
    if self.final_norm:
      features = self.encoder.finalize(features)
    return self.fc(features.mean(axis=1))


def event_segments(config, split: str, videos: int) -> tuple[dict, np.ndarray]:
  """({'frames': (N, 3, H, W), 'audio': (N, S)}, class (N,)) of the event segments of
  `videos` synthetic AVE videos, whatever the task's own synthetic data: the classes and
  sounds of `data.synthetic`, frames at Swin's input size, 10 segments per video (so
  every task's demo pretrains the same encoders; AVS's frames are its larger mask size)."""
  synthetic_config = dataclasses.replace(
      sources.synthetic_config("synthetic", config.data.synthetic.to_dict()),
      image_size=(config.model.swin.img_size,) * 2,
      num_segments=synthetic.SyntheticConfig.num_segments)
  source = synthetic.SyntheticSource(split, videos, synthetic_config)
  frames, audio, labels = [], [], []
  background = source.num_labels - 1
  for i in range(len(source)):
    element = source[i]
    cls = element["label"].argmax(-1)
    keep = cls != background
    frames.append(element["frames"][keep])
    audio.append(element["audio"][keep])
    labels.append(cls[keep])
  return ({"frames": np.concatenate(frames), "audio": np.concatenate(audio)},
          np.concatenate(labels).astype(np.int32))


def _train(model: EncoderClassifier, inputs: np.ndarray, labels: np.ndarray, pre, seed: int):
  parts = nnx_utils.split(model)
  tx = optax.adam(pre.lr)

  def loss_fn(trainable, stats, x, y, rng):
    m = nnx_utils.merge(parts.graphdef, trainable, parts.frozen, stats)
    logits = m(x, deterministic=False, rngs=layers.DropoutStream(rng))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, ((logits.argmax(-1) == y).mean(), nnx_utils.stats_of(m))

  @jax.jit
  def step(trainable, opt_state, stats, x, y, rng):
    (loss, (acc, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        trainable, stats, x, y, rng)
    updates, opt_state = tx.update(grads, opt_state, trainable)
    return optax.apply_updates(trainable, updates), opt_state, stats, loss, acc

  trainable, stats = parts.trainable, parts.stats
  opt_state = tx.init(trainable)
  rng = np.random.default_rng(seed)
  key = jax.random.PRNGKey(seed)
  history = []
  for i in range(pre.steps):
    idx = rng.choice(len(labels), pre.batch_size, replace=False)
    trainable, opt_state, stats, loss, acc = step(
        trainable, opt_state, stats, inputs[idx], labels[idx], jax.random.fold_in(key, i))
    history.append((float(loss), float(acc)))
  return dataclasses.replace(parts, trainable=trainable, stats=stats), history


def _accuracy(parts, inputs, labels, batch: int = 64) -> float:
  @jax.jit
  def predict(trainable, stats, x):
    return nnx_utils.merge(parts.graphdef, trainable, parts.frozen, stats)(x).argmax(-1)
  correct = 0
  for i in range(0, len(labels), batch):
    correct += int((np.asarray(predict(parts.trainable, parts.stats, inputs[i:i + batch]))
                    == labels[i:i + batch]).sum())
  return 100.0 * correct / len(labels)


def pretrain_encoder(config, name: str, out_dir) -> dict:
  """Trains the encoder `name` of `config.pretrain.encoders`; writes a converted-weights dir."""
  from weight_conversion import store  # pylint: disable=import-outside-toplevel
  pre = config.pretrain
  spec = pre.encoders[name]
  encoder_config = config.model[config.init_from[name].prefix].to_dict()
  num_classes = config.data.synthetic.num_classes
  t0 = time.time()
  inputs, labels = event_segments(config, "train", pre.videos)
  val_inputs, val_labels = event_segments(config, "val", pre.eval_videos)
  model = EncoderClassifier(spec.arch, encoder_config, num_classes, final_norm=spec.final_norm,
                            rngs=nnx.Rngs(pre.seed))
  parts, history = _train(model, inputs[spec.input], labels, pre, pre.seed)
  val_acc = _accuracy(parts, val_inputs[spec.input], val_labels)
  # The encoder alone, every variable (weights and bn0 statistics), as dotted paths.
  values = {k[len("encoder."):]: np.asarray(v)
            for k, v in {**nnx_utils.flatten(parts.trainable),
                         **nnx_utils.flatten(parts.stats)}.items() if k.startswith("encoder.")}
  manifest = {"arch": spec.arch, "model_config": encoder_config,
              "source": "dgsct_jax.pretrain (synthetic train split, event segments)",
              "pretrain": dict(pre.to_dict(), steps_done=len(history),
                               final_train_loss=history[-1][0], val_accuracy=val_acc,
                               seconds=round(time.time() - t0, 1))}
  manifest = store.save(out_dir, values, manifest)
  logging.info("pretrained %s encoder: val accuracy %.1f%% -> %s", name, val_acc, out_dir)
  return manifest


def ensure_encoders(config) -> dict:
  """Pretrains every encoder of `config.init_from` whose directory is missing."""
  done = {}
  for name, spec in sorted(config.init_from.items()):
    directory = pathlib.Path(config.weights_dir) / spec.dir
    if (directory / "manifest.json").is_file():
      continue
    if (directory / "params").exists():
      raise FileExistsError(f"{directory} holds weights but no manifest (an interrupted "
                            "pretraining?); delete it to pretrain again")
    print(f"pretraining the tiny {name} encoder on synthetic data -> {directory}", flush=True)
    manifest = pretrain_encoder(config, name, directory)
    stats = manifest["pretrain"]
    print(f"  {name}: {stats['steps_done']} steps, val accuracy on event segments "
          f"{stats['val_accuracy']:.1f}% (chance {100 / config.data.synthetic.num_classes:.1f}%), "
          f"{stats['seconds']:.0f} s", flush=True)
    done[name] = manifest
  return done
