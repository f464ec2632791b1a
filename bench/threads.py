"""Threads benchmark: one short epoch alone and beside CPU hogs, at the old and new defaults.

Goal (issue 14): at the default ``train.threads=0`` an epoch beside two CPU hogs takes at most
3x its time alone, and the new default is at most 5% slower than the old one alone.

Usage:
    python bench/threads.py [--models bilstm,resnet18] [--hogs 2] [--repeats 3] [--rounds 2]
        [--steps bilstm=20,resnet18=3] [--data-dir ../shared/data]

Each variant runs in its own process (OpenMP variables are read once, when torch loads; the
ones a user may have set are removed, so every variant gets libgomp's defaults):
  * old: ``train.threads=0`` as before issue 14: torch's default thread count (one per core),
    fixed for the whole run.
  * new: ``train.threads=0`` today: the same start, plus the AutoThreads callback that
    runner.train adds, which keeps one thread per core other processes leave free.
  * one: ``train.threads=1`` (the workaround the issue used), for reference.
  * passive (not in the default --variants): old with OMP_WAIT_POLICY=PASSIVE.
A process builds the data once, runs one warm-up epoch, then ``--repeats`` pairs of epochs,
alone and beside ``--hogs`` busy-loop processes that it starts before the epoch and kills right
after (a hog also exits by itself after 10 minutes, or when that process dies); the order
within a pair alternates.
The variants' processes are interleaved (old, new, one, old, new, one, ...) for ``--rounds``
rounds, so a change in the machine's load hits them alike. An epoch is ``Trainer.fit`` of a
fresh model for one epoch of K steps plus its validation pass (text: 2,000 tweets; images:
600 of scikit-learn's digits at 32x32, so no data files are needed for them).

Output: the median epoch seconds per variant alone and beside the hogs, the ratio
beside/alone per variant (goal <= 3), and new/old alone (goal <= 1.05). The load average is
printed too: on a shared machine "alone" means "without this bench's hogs".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESETS = {"bilstm": "text-bilstm", "resnet18": "images-resnet18", "rnn": "sales-rnn"}
STEPS = {"bilstm": 20, "resnet18": 3, "rnn": 20}
# variant -> (train.threads, extra environment, AutoThreads on)
VARIANTS: dict[str, tuple[int, dict[str, str], bool]] = {
    "old": (0, {}, False),
    "new": (0, {}, True),
    "one": (1, {}, False),
    "passive": (0, {"OMP_WAIT_POLICY": "PASSIVE"}, False),
}
OPENMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "KMP_BLOCKTIME")
# A busy loop that ends after 10 minutes or when the process that started it is gone.
HOG = (
    "import os, time\nppid, end = os.getppid(), time.time() + 600\n"
    "while time.time() < end and os.getppid() == ppid:\n    pass\n"
)
GOAL_BUSY, GOAL_IDLE = 3.0, 1.05


def child(
    model: str, steps: int, threads: int, repeats: int, hogs: int, data_dir: str, auto: bool
) -> None:
    """Time ``repeats`` epochs alone and as many beside ``hogs`` hogs; print JSON."""
    import torch

    from archlab import runner
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS as ALL
    from archlab.threads import governor
    from archlab.train.callbacks import AutoThreads
    from archlab.train.setup import setup_process
    from archlab.train.trainer import Trainer

    cfg = ALL[PRESETS[model]]
    sets = ["train.epochs=1", f"train.max_steps_per_epoch={steps}", f"train.threads={threads}",
            "train.progress=off", "train.device=cpu"]  # fmt: skip
    if cfg.task == "images":
        sets += ["data.format=digits", "data.path=", "data.subset=600", "reg.augment=none"]
    elif cfg.task == "text":
        sets += [f"data.path={Path(data_dir) / 'twitter_airline' / 'Tweets.csv'}",
                 "data.subset=2000"]  # fmt: skip
    else:
        sets += [f"data.path={Path(data_dir) / 'walmart'}", "data.stores=1,2"]
    cfg = apply_overrides(cfg, sets)
    device = setup_process(cfg.train, cfg.seed)  # applies train.threads exactly as a run does
    threads_at_start = torch.get_num_threads()
    task, data = runner.build_task(cfg, device)

    def epoch() -> float:
        model_ = task.build_model()
        g = governor()  # train.threads=0: the run's AutoThreads callback, as runner adds it
        cbs = [AutoThreads(g)] if g is not None and auto else []
        trainer = Trainer(cfg.train, cfg.optim, cfg.reg, seed=cfg.seed, device=device,
                          callbacks=cbs)  # fmt: skip
        t0 = time.perf_counter()
        trainer.fit(task, data, model_)
        used.append(torch.get_num_threads())  # where AutoThreads left it (0: follows load)
        return time.perf_counter() - t0

    def beside_hogs() -> float:
        procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
        try:
            time.sleep(0.5)  # let them reach their loops (and the load window see them)
            return epoch()
        finally:
            for p in procs:
                p.kill()
                p.wait()

    used: list[int] = []
    epoch()  # warm-up: first-touch allocations, oneDNN primitive caches
    alone, busy, alone_threads, busy_threads = [], [], [], []
    for i in range(repeats):
        for kind in ("alone", "busy") if i % 2 == 0 else ("busy", "alone"):
            if kind == "alone":
                alone.append(epoch())
                alone_threads.append(used[-1])
            else:
                busy.append(beside_hogs())
                busy_threads.append(used[-1])
    print(json.dumps({"threads": threads_at_start, "alone": alone, "busy": busy,
                      "alone_threads": alone_threads, "busy_threads": busy_threads}))  # fmt: skip


def run_variant(name: str, model: str, args: argparse.Namespace, steps: int) -> dict:
    threads, extra, auto = VARIANTS[name]
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_VARS}
    env.update(extra)
    cmd = [sys.executable, __file__, "--child", model, "--child-steps", str(steps),
           "--child-threads", str(threads), "--repeats", str(args.repeats),
           "--hogs", str(args.hogs), "--data-dir", args.data_dir,
           *(["--child-auto"] if auto else [])]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=REPO)
    if res.returncode != 0:
        raise SystemExit(f"{name}/{model} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _mode(values: list[float]) -> int:
    return int(statistics.mode(values)) if values else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bilstm,resnet18")
    ap.add_argument("--variants", default="old,new,one")
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="epoch pairs per process")
    ap.add_argument("--rounds", type=int, default=2, help="processes per variant, interleaved")
    ap.add_argument("--steps", default="", help="per model, e.g. bilstm=20,resnet18=3")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child-steps", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-threads", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-auto", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.child_steps, args.child_threads, args.repeats, args.hogs,
              args.data_dir, args.child_auto)  # fmt: skip
        return
    steps = dict(STEPS)
    for kv in filter(None, args.steps.split(",")):
        k, v = kv.split("=")
        steps[k] = int(v)
    models, variants = args.models.split(","), args.variants.split(",")
    if "text" in [PRESETS[m].split("-")[0] for m in models]:
        tweets = Path(args.data_dir) / "twitter_airline" / "Tweets.csv"
        if not tweets.exists():
            print(f"skipping bilstm: no {tweets}")
            models = [m for m in models if m != "bilstm"]
    print(f"{os.cpu_count()} CPUs, {args.hogs} hog(s), load average at start "
          f"{os.getloadavg()[0]:.1f}; {args.rounds} round(s) x {args.repeats} pair(s)")  # fmt: skip
    for model in models:
        keys = ("alone", "busy", "alone_threads", "busy_threads")
        times: dict[str, dict[str, list[float]]] = {v: {k: [] for k in keys} for v in variants}
        threads: dict[str, int] = {}
        for _ in range(args.rounds):
            for v in variants:
                r = run_variant(v, model, args, steps[model])
                for k in keys:
                    times[v][k] += r[k]
                threads[v] = r["threads"]
        med = {v: {k: statistics.median(x) for k, x in t.items()} for v, t in times.items()}
        print(f"\n{model} ({PRESETS[model]}, {steps[model]} steps + val), median seconds;")
        print("  threads: at start, then at the end of the epochs alone / beside the hogs")
        print(f"  {'variant':<8}{'threads':>12}{'alone':>9}{'beside':>9}{'beside/alone':>14}")
        for v in variants:
            m, t = med[v], times[v]
            used = f"{threads[v]}:{_mode(t['alone_threads'])}/{_mode(t['busy_threads'])}"
            print(f"  {v:<8}{used:>12}{m['alone']:>9.2f}{m['busy']:>9.2f}"
                  f"{m['busy'] / m['alone']:>13.1f}x")  # fmt: skip
        if "old" in med and "new" in med:
            idle = med["new"]["alone"] / med["old"]["alone"]
            busy = med["new"]["busy"] / med["new"]["alone"]
            print(f"  new beside/alone {busy:.2f} (goal <= {GOAL_BUSY}); new/old alone "
                  f"{idle:.3f} (goal <= {GOAL_IDLE}); old/new beside hogs "
                  f"{med['old']['busy'] / med['new']['busy']:.1f}x")  # fmt: skip
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
