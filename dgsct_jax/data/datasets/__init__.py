"""The datasets DG-SCT is evaluated on, one package each: `ave`, `llp`, `avsbench`, `music_avqa`.

Each package holds its TFDS builder (`builder.py`: ArrayRecord, TF-free, from
a release in `manual_dir`, built with `python -m dgsct_jax.data.build`), the
random-access source that decodes its records for the grain pipeline
(`source.py`, served by `dgsct_jax.data.sources.get_source`) and a README of
the release layout. `base.py` holds what the builders share, `build_record.py`
what a build left out (stored with it, so that a partial build never reads as
complete).
"""

NAMES = ("ave", "llp", "avsbench", "music_avqa")
