"""archlab: train, compare and explain classic deep-learning architectures."""
