"""Datasets and the grain input pipeline.

`datasets/`: one package per TFDS dataset (builder, source, README), built with
`build.py`; `synthetic.py`: the embedded synthetic dataset; `sources.py`: a
source by name; `pipeline.py`: the grain pipeline every source goes through.
"""
