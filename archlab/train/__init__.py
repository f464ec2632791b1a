"""Training: one generic Trainer, its callbacks, and optimizer/schedule construction."""
