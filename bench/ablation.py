"""The study's regularization ablation at full scale, on a GPU or on this CPU, with paired
statistics, resumable from results committed cell by cell.

VGG-13 (the exact one: no batch norm) and ResNet-18 on all of images3 (12,600 / 2,700 / 2,700),
each technique alone on top of the model's tuned optimizer with every other regularizer off
(archlab.ablate.technique_configs, as `archlab ablate`): baseline, dropout, early_stop, augment,
l2; 3 seeds each. Seed k of every technique trains on seed k's own split with seed k's
initialization and batch order, so each technique is paired with the baseline on every seed
(archlab.stats: mean paired difference, 95% Student-t interval, helps / hurts / cannot tell
apart). Epochs are fixed per model (EPOCHS), the same for every technique and seed, and chosen
before any run: no number here is picked on test scores.

The runs are archlab run directories (`archlab eval RUN_DIR` works), trained by child processes
from a queue ``--concurrency`` wide, longest first. With ``--cells DIR`` each finished run is also
copied there without its weights (config.yaml, data.json, metrics.json, history.csv and
inputs.json: what the statistics and `archlab reproduce --cells` read), a folder meant to be
committed as cells complete: a later sitting with the same ``--cells`` skips every cell already
there, even on a fresh machine, and the tables are computed from that folder. One results file
gathers the per-model tables, the statistics, every run's test metrics and history and a plateau
check of the baseline's validation accuracy.

Budget. On one H200 (bench/results/gpu_images_h200_2026-11-26.json) the GPU served ~200
steps/s at concurrency 10: 57,735 steps ~ 6 minutes in all (``--budget-s`` 540 by default
there). On this 2-core CPU (quiet, fp32): ResNet-18 ~18.7 s per epoch at 2 threads, so 15 runs
x 15 epochs ~ 75 min; VGG-13 ~2 min per epoch, 15 x 12 epochs ~ 6 h (1 run at a time, 2
threads; ``--concurrency 1 --threads 2``). No budget on the CPU unless ``--budget-s`` is given;
Ctrl-C (or a kill) loses at most the unfinished runs' last minute: they resume from their
checkpoints in ``--out``, and finished cells are already in ``--cells``.

    # this CPU, ResNet-18 half, cells committed as they complete:
    python bench/ablation.py --data DIR/images3/cifar10_dog_automobile_ship.npz --models resnet18 \
        --out /tmp/abl --cells bench/results/ablation_cpu --concurrency 1 --threads 2 \
        --results bench/results/ablation_cpu/results.json
    # a GPU machine (images3 copied into the repo, an ignored folder that travels):
    python bench/ablation.py --data .gpu-data/cifar10_dog_automobile_ship.npz \
        --out /tmp/abl --results $OUT/ablation_h200_$(date +%F).json
    # anywhere, as a check (CPU, 300 images, 1 epoch of 2 steps; add --models resnet18
    # --techniques baseline,l2 for ~2 min):
    python bench/ablation.py --data DIR/images3/cifar10_dog_automobile_ship.npz \
        --out /tmp/abl-tiny --tiny --seeds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpu_images import DRY, _tail  # the CPU dry-run overrides and the log tail

T0 = time.monotonic()
# archlab from this tree, installed or not (the GPU machine has no install; children run this file).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Per model, every technique and seed alike; `archlab reproduce` runs its ablations at the same.
from archlab.presets import ABLATION_EPOCHS as EPOCHS  # noqa: E402

TECHNIQUES = ("baseline", "dropout", "early_stop", "augment", "l2")
# What a results row keeps of each run's metrics.json.
KEEP = ("test_accuracy", "test_f1_macro", "test_loss", "epochs_run", "best_epoch",
        "stopped_early", "final_train_loss", "final_val_loss", "train_seconds",
        "epoch_seconds_mean", "n_parameters")  # fmt: skip


def run_dir(out: Path, job: str) -> Path:
    """``MODEL/TECH-sSEED`` -> OUT/MODEL/TECH-sSEED, the layout of `archlab ablate --out`."""
    return out / job


def child(args: argparse.Namespace) -> None:
    """Train one ``MODEL/TECH-sSEED`` run in this process (resumes a run left unfinished)."""
    from archlab.ablate import technique_configs
    from archlab.config import apply_overrides
    from archlab.presets import PRESETS
    from archlab.runner import train_at

    model, _, rest = args.child.partition("/")
    tech, _, seed = rest.rpartition("-s")
    import torch

    # One precision for every cell of a grid: on a CPU 'auto' times the candidates and could
    # choose differently from one run to the next; fp32 unless --amp says otherwise.
    amp = args.amp or ("auto" if torch.cuda.is_available() else "off")
    sets = [f"data.path={args.data}", "train.progress=plain", f"train.threads={args.threads}",
            f"train.epochs={args.epochs}", f"train.amp={amp}",
            *(DRY if args.tiny else ()), *args.set]  # fmt: skip
    base = apply_overrides(PRESETS[f"images-{model}"], sets)
    cfg = replace(technique_configs(base, [tech])[tech], seed=int(seed))
    d = train_at(cfg, run_dir(Path(args.out), args.child), command=" ".join(sys.argv))
    print(f"DONE {args.child} {d}", flush=True)


def jobs(models: list[str], techniques: list[str], seeds: int) -> list[str]:
    return [f"{m}/{t}-s{s}" for m in models for t in techniques for s in range(seeds)]


KILLED, NOT_STARTED = "killed at the budget", "not started (budget)"


def run_queue(
    args: argparse.Namespace, queue: list[str], epochs: dict[str, int], deadline: float
) -> dict[str, int | str]:
    """Run ``queue`` ``--concurrency`` at a time (in order): exit codes, or KILLED/NOT_STARTED."""
    from archlab import rundir
    from archlab.runner import load_config

    logs = Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A rerun into the same --out resumes: runs finished with these epochs are not started again
    # (any other difference in config stops the child: train_at refuses to mix configs).
    done = [
        j
        for j in queue
        if any(rundir.is_finished(d) and load_config(d).train.epochs == epochs[j.split("/")[0]]
               for d in (run_dir(Path(args.out), j), cell_dir(args, j)))
    ]  # fmt: skip
    codes: dict[str, int | str] = dict.fromkeys(done, "finished before")
    todo, running = [j for j in queue if j not in codes], {}
    while todo or running:
        while todo and len(running) < args.concurrency and time.monotonic() < deadline:
            job = todo.pop(0)
            model = job.partition("/")[0]
            cmd = [sys.executable, __file__, "--child", job, "--data", args.data, "--out",
                   args.out, "--epochs", str(epochs[model])]  # fmt: skip
            cmd += ["--threads", str(args.threads)] + (["--tiny"] if args.tiny else [])
            cmd += ["--amp", args.amp] if args.amp else []
            cmd += [x for kv in args.set for x in ("--set", kv)]
            log = open(_log(args, job), "w")  # noqa: SIM115
            running[job] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                            log)  # fmt: skip
        for job, (p, log) in list(running.items()):
            if p.poll() is not None:
                codes[job] = p.returncode
                log.close()
                if p.returncode == 0:
                    keep_cell(args, job)
                del running[job]
                print(f"{time.monotonic() - T0:6.0f}s  {job}: exit {p.returncode}", flush=True)
        if time.monotonic() >= deadline:
            for job, (p, log) in running.items():
                p.kill()
                p.wait()
                log.close()
                codes[job] = KILLED
            for job in todo:
                codes[job] = NOT_STARTED
            print(f"budget reached: stopped {len(running)} runs, {len(todo)} never started")
            break
        time.sleep(0.5)
    return codes


def cell_dir(args: argparse.Namespace, job: str) -> Path:
    """Where a finished run's light copy goes (a path that never exists without --cells)."""
    return Path(args.cells) / job if args.cells else Path(args.out) / "no-cells" / job


def keep_cell(args: argparse.Namespace, job: str) -> None:
    """Copy a finished run's statistics files (written last: metrics.json) to --cells."""
    if not args.cells:
        return
    from archlab.ablate import CELL_FILES  # no weights; what `reproduce --cells` reads back

    src, dst = run_dir(Path(args.out), job), cell_dir(args, job)
    dst.mkdir(parents=True, exist_ok=True)
    for name in CELL_FILES:
        shutil.copyfile(src / name, dst / f".{name}.tmp")
        os.replace(dst / f".{name}.tmp", dst / name)
    print(f"{time.monotonic() - T0:6.0f}s  {job}: kept in {dst}", flush=True)


def _log(args: argparse.Namespace, job: str) -> Path:
    return Path(args.out) / "logs" / f"{job.replace('/', '_')}.log"


def plateau(histories: list[list[dict[str, float]]]) -> dict[str, Any]:
    """Did the baseline's validation accuracy stop rising? Gain of its last third of epochs."""
    gains, best = [], []
    for h in histories:
        acc = [r["val_accuracy"] for r in h if "val_accuracy" in r]
        k = max(1, math.ceil(len(acc) / 3))
        if len(acc) > k:
            gains.append(max(acc[-k:]) - max(acc[:-k]))
            best.append(1 + acc.index(max(acc)))
    gain = max(gains) if gains else None  # None: too few epochs to tell
    return {"last_third_val_accuracy_gain_max": gain, "best_val_epochs": best,
            "plateaued": gain is not None and gain <= 0.005}  # fmt: skip


def parent(args: argparse.Namespace) -> None:
    import torch

    from archlab import rundir
    from archlab.ablate import summarize

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    techs = [t.strip() for t in args.techniques.split(",") if t.strip()]
    bad = [m for m in models if m not in EPOCHS] + [t for t in techs if t not in TECHNIQUES]
    if bad:
        sys.exit(f"unknown model(s)/technique(s): {bad}; known: {list(EPOCHS)}, {TECHNIQUES}")
    if not Path(args.data).exists():
        sys.exit(f"{args.data}: no such file (images3's cifar10_dog_automobile_ship.npz)")
    epochs = {m: 1 for m in models} if args.tiny else {m: EPOCHS[m] for m in models}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": gpu,
           "cpus": os.cpu_count(), "threads_per_run": args.threads,
           "load_average_at_start": os.getloadavg()[0]}  # fmt: skip
    print("env", env, "epochs", epochs, flush=True)
    # Longest first, so the short ResNet-18 runs fill the end of the queue.
    queue = sorted(jobs(models, techs, args.seeds), key=lambda j: -(j.startswith("vgg13")))
    codes = run_queue(args, queue, epochs, T0 + args.budget_s)

    out = Path(args.out)
    results = {
        "what": (
            f"bench/ablation.py: {', '.join(models)} on images3, each technique alone "
            f"over {args.seeds} seeds (each seed its own split, paired with the baseline on "
            "it); epochs fixed per model before any run"
            + (" [TINY CHECK RUN]" if args.tiny else "")
        ),
        "env": env,
        "date": time.strftime("%Y-%m-%d"),
        "epochs": epochs,
        "seeds": args.seeds,
        "concurrency": args.concurrency,
        "tiny": args.tiny,
        "wall_s": None,
        "models": {},
        "runs": [],
    }
    for model in models:
        finished: dict[str, list[Path]] = {}
        for tech in techs:
            for s in range(args.seeds):
                job = f"{model}/{tech}-s{s}"
                d = run_dir(out, job)
                if not rundir.is_finished(d) and rundir.is_finished(cell_dir(args, job)):
                    d = cell_dir(args, job)  # committed in an earlier sitting
                row = {"model": model, "technique": tech, "seed": s, "exit": codes.get(job)}
                if rundir.is_finished(d):
                    m = rundir.read_metrics(d)
                    row["metrics"] = {k: m[k] for k in KEEP if k in m}
                    row["history"] = rundir.read_history(d / rundir.HISTORY)
                    finished.setdefault(tech, []).append(d)
                else:
                    row["unfinished"] = True
                    row["log_tail"] = _tail(_log(args, job))
                    print(f"UNFINISHED {job} ({codes.get(job)}):\n{row['log_tail']}".strip())
                results["runs"].append(row)
        if not finished:
            continue
        rows = summarize(finished, "images", out / model)  # ablation.md/csv/json, curves
        base_hist = [rundir.read_history(d / rundir.HISTORY)
                     for d in finished.get("baseline", [])]  # fmt: skip
        results["models"][model] = {
            "stats": {r.pop("technique"): r for r in rows},
            "table": (out / model / "ablation.md").read_text(),
            "baseline_plateau": plateau(base_hist),
        }
        print(f"\n{model} ({epochs[model]} epochs)\n{results['models'][model]['table']}")
    results["wall_s"] = round(time.monotonic() - T0, 1)
    dest = Path(args.results) if args.results else out / "results.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wall {results['wall_s']} s; results in {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="images3's cifar10_dog_automobile_ship.npz")
    ap.add_argument("--out", required=True, help="where the run directories go")
    ap.add_argument("--results", default="", help="results JSON (default OUT/results.json)")
    ap.add_argument("--models", default=",".join(EPOCHS))
    ap.add_argument("--techniques", default=",".join(TECHNIQUES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cells", default="", help="keep finished runs' statistics files here")
    ap.add_argument("--concurrency", type=int, default=0,
                    help="runs at once (GPU 10; CPU and --tiny 2)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="train.threads of each run")
    ap.add_argument("--amp", default="", help="train.amp of every run (default: off on a CPU)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="machine setting of every run: train.channels_last=true")  # fmt: skip
    ap.add_argument("--budget-s", type=float, default=0.0,
                    help="wall clock, then stop all (GPU 540; --tiny 3600; CPU none)")  # fmt: skip
    ap.add_argument("--tiny", action="store_true", help="CPU, 300 images, 1 epoch of 2 steps")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    gpu = torch.cuda.is_available() and not args.tiny
    args.concurrency = args.concurrency or (10 if gpu else 2)
    args.budget_s = args.budget_s or (540.0 if gpu else 3600.0 if args.tiny else math.inf)
    if args.seeds < 2 and not args.child:
        sys.exit("--seeds must be >= 2 for paired intervals")
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
