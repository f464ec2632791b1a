"""archlab: train, compare and explain classic deep-learning architectures."""

from archlab import threads as _threads

# Before anything imports torch: OpenMP threads sleep when they wait (see archlab/threads.py).
_threads.prepare_openmp()
