"""Adam fused or per-op, in fp32 and bf16 autocast: the BiLSTM's training step on a CPU.

Usage: python bench/fused_adam.py [THREADS]

bench/cpu_precision.py's synthetic BiLSTM batch (64 texts of 32 tokens, vocabulary 10,000,
embedding 128, hidden 64, 2 layers), the text-bilstm preset's dropout, Adam at 1e-3; four
variants interleaved over 15 rounds after two warm-up steps each; median ms per step and the
ratio to fp32 per-op Adam. archlab's optimizer is fused wherever the parameters allow it
(archlab/train/optim.py), so its fp32 and bf16 runs compare as the two fused rows.
"""

import sys

import torch

sys.path.insert(0, "bench")  # cpu_precision, beside this file
import cpu_precision as cp

from archlab.presets import PRESETS

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
preset = PRESETS["text-bilstm"]
task = cp.SyntheticTask("bilstm", 64)
batch = next(iter(task.data().train.iterate(64)))
steps = {}
for bf16 in (False, True):
    for fused in (False, True):
        m = task.build_model(preset.reg.dropout)
        steps[(bf16, fused)] = cp.adam_step(task, m, batch, bf16, fused)
med = cp.interleaved_ms(steps, 15)
base = med[(False, False)]
for k, v in med.items():
    print(f"bf16={k[0]!s:5} fused={k[1]!s:5} {v:6.1f} ms  x{base / v:.2f}")
