"""`get_source(name, split, ...)`: random-access sources of decoded element dicts.

Names: 'synthetic', 'synthetic/llp', 'synthetic/avs' and 'synthetic/avqa' (AVE-,
LLP-, AVSBench- and MUSIC-AVQA-format elements generated per index, `synthetic.py`,
`synthetic_llp.py`, `synthetic_avs.py`, `synthetic_avqa.py`) and the TFDS datasets of
`dgsct_jax.data.datasets`: 'ave', 'llp', 'avsbench/s4', 'avsbench/ms3',
'music_avqa', each served by the `source.make_source` of its package. Every
source is served by the same grain pipeline (`pipeline.py`). Decoding happens
in `__getitem__`, hence inside grain's read threads / worker processes.
"""
import dataclasses
import importlib

from dgsct_jax.data import synthetic
from dgsct_jax.data import synthetic_avqa
from dgsct_jax.data import synthetic_avs
from dgsct_jax.data import synthetic_llp

# Source name -> (package in dgsct_jax.data.datasets, fixed arguments of its
# `source.make_source`). Imported on use: only these need TFDS.
_DATASETS = {
    "ave": ("ave", {}),
    "llp": ("llp", {}),
    "avsbench/s4": ("avsbench", {"subset": "s4"}),
    "avsbench/ms3": ("avsbench", {"subset": "ms3"}),
    "music_avqa": ("music_avqa", {}),
}
# Generated sources: name -> (source class, its config class).
_SYNTHETIC = {
    "synthetic": (synthetic.SyntheticSource, synthetic.SyntheticConfig),
    "synthetic/llp": (synthetic_llp.SyntheticLlpSource, synthetic_llp.SyntheticLlpConfig),
    "synthetic/avs": (synthetic_avs.SyntheticAvsSource, synthetic_avs.SyntheticAvsConfig),
    "synthetic/avqa": (synthetic_avqa.SyntheticAvqaSource, synthetic_avqa.SyntheticAvqaConfig),
}
KNOWN_SOURCES = (*_DATASETS, *_SYNTHETIC)


def synthetic_config(name: str, values: dict):
  """The config of the generated source `name` from a config section: the keys its
  dataclass has (one `data.synthetic` section serves every generated source; keys it
  lacks take the defaults)."""
  config_type = _SYNTHETIC[name][1]
  fields = {f.name for f in dataclasses.fields(config_type)}
  return config_type(**{k: v for k, v in dict(values).items() if k in fields})


def get_source(name: str, split: str, data_dir=None, *, image_size=None, size=None,
               config: (synthetic.SyntheticConfig | synthetic_llp.SyntheticLlpConfig
                        | synthetic_avs.SyntheticAvsConfig
                        | synthetic_avqa.SyntheticAvqaConfig | None) = None,
               allow_partial: bool = True,
               **source_kwargs):
  """A random-access source (`len`, `[i]` -> element dict) for one split.

  Args:
    name: one of `KNOWN_SOURCES`: 'ave', 'llp', 'avsbench/s4', 'avsbench/ms3',
      'music_avqa' (TFDS datasets built once from the releases, see
      dgsct_jax/data/datasets/*/README.md), 'synthetic', 'synthetic/llp',
      'synthetic/avs' or 'synthetic/avqa'.
    split: 'train', 'val' or 'test'; for the TFDS datasets any split spec
      ('train[:10%]'); music_avqa joins the qa and videos configs of the split.
    data_dir: TFDS data dir (default: TFDS's, ~/tensorflow_datasets); a
      leading ~ is expanded (`datasets.base.built`).
    image_size: (H, W) of the output frames; default (192, 192), the config's
      for the synthetic ones (pass `config` to change it there); not for avsbench.
    size: number of videos of a synthetic split (default per split).
    config: `synthetic.SyntheticConfig` for 'synthetic',
      `synthetic_llp.SyntheticLlpConfig` for 'synthetic/llp',
      `synthetic_avs.SyntheticAvsConfig` for 'synthetic/avs',
      `synthetic_avqa.SyntheticAvqaConfig` for 'synthetic/avqa' (classes, frame size,
      samples, seed, ...).
    allow_partial: for the TFDS datasets, whether a partial build (videos
      skipped under --skip_bad or beyond --max_videos_per_split, non-default
      --min_frames, or no build record) is served, with a warning naming what
      it lacks per split; False refuses it (`PartialBuildError`). music_avqa
      drops the questions whose video is missing, with a warning.
    **source_kwargs: fields of the dataset's source, e.g. AvqaSource's `seed`,
      `negatives`, `reference_negative_rule`.
  """
  image_size = tuple(image_size) if image_size is not None else None
  if name in _DATASETS:
    package, fixed = _DATASETS[name]
    source = importlib.import_module(f"dgsct_jax.data.datasets.{package}.source")
    return source.make_source(split, data_dir, image_size, allow_partial=allow_partial, **fixed,
                              **source_kwargs)
  if name in _SYNTHETIC:
    make, config_type = _SYNTHETIC[name]
    if source_kwargs:
      raise TypeError(f"{name} takes no source options, got {sorted(source_kwargs)}")
    config = config or config_type()
    if not isinstance(config, config_type):
      raise TypeError(f"{name} takes a {config_type.__name__}, got {type(config).__name__}")
    if image_size is not None and image_size != tuple(config.image_size):
      config = dataclasses.replace(config, image_size=image_size)
    return make(split, size, config)
  raise ValueError(f"unknown dataset {name!r}; known: {', '.join(KNOWN_SOURCES)}")
