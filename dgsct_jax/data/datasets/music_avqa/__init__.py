"""MUSIC-AVQA; importing registers the `music_avqa` TFDS builder (configs qa, videos)."""
from dgsct_jax.data.datasets.music_avqa.builder import (  # noqa: F401
    MusicAvqa, read_split_json, video_list, vocabularies)
