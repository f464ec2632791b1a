"""How much of the BiLSTM's bf16 shortfall at 2 threads is dropout's mask: the training step with
nn.LSTM's between-layer dropout on (the preset, 0.5) and off, fp32 and bf16 autocast, fused Adam.

Usage: python bench/bilstm_bf16_bound.py [THREADS]   (interleaved steps, medians of 20)
"""

import statistics
import sys
import time

import torch

sys.path.insert(0, "bench")  # cpu_precision, beside this file
import cpu_precision as cp
from torch.amp import autocast

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
task = cp.SyntheticTask("bilstm", 64)
batch = next(iter(task.data().train.iterate(64)))
steps = {}
for lstm_drop in (0.5, 0.0):
    for bf16 in (False, True):
        m = task.build_model(0.5)
        m.lstm.dropout = lstm_drop
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)

        def step(m=m, opt=opt, bf16=bf16):
            with autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out, y = task.step(m, batch)
            loss = task.loss(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[(lstm_drop, bf16)] = step
t = {k: [] for k in steps}
for s in steps.values():
    s()
    s()
for _ in range(20):
    for k, s in steps.items():
        t0 = time.perf_counter()
        s()
        t[k].append(time.perf_counter() - t0)
med = {k: 1000 * statistics.median(v) for k, v in t.items()}
for k, v in med.items():
    print(f"lstm_dropout={k[0]} bf16={k[1]!s:5} {v:6.1f} ms")
for d in (0.5, 0.0):
    print(f"lstm_dropout={d}: bf16 speedup x{med[(d, False)] / med[(d, True)]:.2f}")
