"""Task definitions: targets, losses and metrics per downstream task (AVE, ...)."""
