"""Training: the trainer and its resumable state, checkpoints, the non-finite guard, signals, torchrun."""
