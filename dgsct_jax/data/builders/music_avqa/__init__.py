"""MUSIC-AVQA TFDS builder; importing registers the `music_avqa` builder (configs qa, videos)."""
from dgsct_jax.data.builders.music_avqa.music_avqa import (  # noqa: F401
    MusicAvqa, read_split_json, video_list, vocabularies)
