"""How much of the BiLSTM's bf16 shortfall at 2 threads is dropout's mask: the training step with
nn.LSTM's between-layer dropout on (the preset, 0.5) and off, fp32 and bf16 autocast, fused Adam.

Usage: python bench/bilstm_bf16_bound.py [THREADS]   (interleaved steps, medians of 20)
"""

import sys

import torch

sys.path.insert(0, "bench")  # cpu_precision, beside this file
import cpu_precision as cp

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
task = cp.SyntheticTask("bilstm", 64)
batch = next(iter(task.data().train.iterate(64)))
steps = {}
for lstm_drop in (0.5, 0.0):
    for bf16 in (False, True):
        m = task.build_model(0.5)
        m.lstm.dropout = lstm_drop
        steps[(lstm_drop, bf16)] = cp.adam_step(task, m, batch, bf16, fused=True)
med = cp.interleaved_ms(steps, 20)
for k, v in med.items():
    print(f"lstm_dropout={k[0]} bf16={k[1]!s:5} {v:6.1f} ms")
for d in (0.5, 0.0):
    print(f"lstm_dropout={d}: bf16 speedup x{med[(d, False)] / med[(d, True)]:.2f}")
