"""Task heads on top of the DG-SCT backbone, one module per task (`ave`: CMBS)."""
