"""Task metrics, exactly as the DG-SCT reference scores them (NumPy; accept JAX arrays).

* `avvp`: LLP segment- and event-level F (A, V, AV, Type@AV, Event@AV).
* `avs`: AVSBench M_J (mIoU) and M_F (per-batch best-threshold F-measure).
* `avqa`: MUSIC-AVQA accuracy per question type, pooled per modality, overall.

Every function returns percent and keeps each reference quirk behind a named
option whose default is the reference behaviour. `python -m dgsct_jax.evaluate`
runs them on saved predictions.
"""
from dgsct_jax.metrics import avqa, avs, avvp

__all__ = ["avqa", "avs", "avvp"]
