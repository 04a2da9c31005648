"""The frozen encoders DG-SCT adapts: Swin-V2 (`swinv2`), HTS-AT (`htsat`) and its
on-device log-mel front end (`audio_frontend`)."""
