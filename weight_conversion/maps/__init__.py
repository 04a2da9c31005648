"""Conversion maps, one module per model family, each defining `ARCHS`
(found automatically by `weight_conversion.archs`): `swinv2`, `htsat`, the
shared DG-SCT backbone (`dgsct`) and one module per task (`ave`)."""
