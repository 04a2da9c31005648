"""Task metrics, exactly as the DG-SCT reference scores them (NumPy; accept JAX arrays).

* `ave`: AVE segment accuracy (and the majority-class baseline).
* `avvp`: LLP segment- and event-level F (A, V, AV, Type@AV, Event@AV).
* `avs`: AVSBench M_J (mIoU) and M_F (per-batch best-threshold F-measure).
* `avqa`: MUSIC-AVQA accuracy per question type, pooled per modality, overall.

Every function returns percent and keeps each reference quirk behind a named
option whose default is the reference behaviour. Each module has an
accumulator (`update(rows)`, `result()`) that the training-time evaluation and
`python -m dgsct_jax.score` share; its `update` refuses rows that would be
scored wrongly (NaN/Inf, probabilities outside [0, 1], ids outside the
classes, wrong shapes) with the checks of `checks`.
"""
