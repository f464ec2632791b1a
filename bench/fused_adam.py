"""Adam fused or per-op, in fp32 and bf16 autocast: the BiLSTM's training step on a CPU.

Usage: python bench/fused_adam.py [THREADS]

bench/cpu_precision.py's synthetic BiLSTM batch (64 texts of 32 tokens, vocabulary 10,000,
embedding 128, hidden 64, 2 layers), the text-bilstm preset's dropout, Adam at 1e-3; four
variants interleaved over 15 rounds after two warm-up steps each; median ms per step and the
ratio to fp32 per-op Adam. archlab's optimizer is fused wherever the parameters allow it
(archlab/train/optim.py), so its fp32 and bf16 runs compare as the two fused rows.
"""

import statistics
import sys
import time

import torch

sys.path.insert(0, "bench")  # cpu_precision, beside this file
import cpu_precision as cp
from torch.amp import autocast

from archlab.presets import PRESETS

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
preset = PRESETS["text-bilstm"]
task = cp.SyntheticTask("bilstm", 64)
batch = next(iter(task.data().train.iterate(64)))
steps = {}
for bf16 in (False, True):
    for fused in (False, True):
        m = task.build_model(preset.reg.dropout)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, fused=fused)

        def step(m=m, opt=opt, bf16=bf16):
            with autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out, y = task.step(m, batch)
            loss = task.loss(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[(bf16, fused)] = step
t = {k: [] for k in steps}
for s in steps.values():
    s()
    s()
for _ in range(15):
    for k, s in steps.items():
        t0 = time.perf_counter()
        s()
        t[k].append(time.perf_counter() - t0)
med = {k: 1000 * statistics.median(v) for k, v in t.items()}
base = med[(False, False)]
for k, v in med.items():
    print(f"bf16={k[0]!s:5} fused={k[1]!s:5} {v:6.1f} ms  x{base / v:.2f}")
