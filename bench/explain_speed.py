"""Benchmark: Grad-CAM for 64 images of ResNet-18 at 64x64 (goal <= 5 s on 2 cores) and
integrated gradients for 100 tweets at 32 steps (goal <= 10 s).

Usage: python bench/explain_speed.py [--threads 2] [--repeat 3] [--text-run RUN_DIR]
Speed does not depend on what the weights learned, so both use freshly initialized networks
of the study's sizes (ResNet-18, 1 channel, 3 classes; BiLSTM embed 128, hidden 64, 2 layers,
20,000 words) unless --text-run gives a trained text run, whose tokenizer and weights are used
(a trained LSTM may need IG refinement steps; both the fixed-32 and the refined time print).
Tweets come from the shared airline file when present, else synthetic 20-word texts.
Best of N, wall and CPU time: on a shared machine wall time also measures the other jobs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from archlab.explain import images, text
from archlab.models import MODELS

TWEETS = Path(__file__).resolve().parents[2] / "shared/data/twitter_airline/Tweets.csv"


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def tweets(n: int) -> list[str]:
    if TWEETS.exists():
        from archlab.data.text import read_csv

        return read_csv(TWEETS, ["text"], "utf-8")["text"].tolist()[:n]
    g = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(500)]
    return [" ".join(words[j] for j in torch.randint(0, 500, (20,), generator=g)) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--text-run", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = MODELS["resnet18"].build(in_channels=1, num_classes=3).eval()
    x = torch.randn(64, 1, 64, 64)
    t = model(x).argmax(1).detach()
    chosen = images.target_layer("resnet18", model, (1, 64, 64))
    for label, layer in (("chosen " + images._layer_name(model, chosen), chosen),
                         ("last block layer4", model.layer4)):  # fmt: skip
        wall, cpu = best_of(lambda layer=layer: images.gradcam(model, layer, x, t), args.repeat)
        print(f"gradcam resnet18 64 images 64x64 ({label}): {wall:.2f}s wall, {cpu:.2f}s cpu "
              f"(goal <= 5 s) ratio_to_goal={wall / 5:.2f}")  # fmt: skip

    from archlab.data.text import encode, train_tokenizer

    texts = tweets(100)
    if args.text_run is not None:
        from archlab.runner import restore_task

        _, task, lm = restore_task(args.text_run)
        tok = task.tokenizer
    else:
        tok = train_tokenizer(tweets(5000))
        lm = MODELS["bilstm"].build(vocab_size=20_000, num_classes=3).eval()
    tokens, lengths = encode(tok, texts, 64)
    with torch.no_grad():
        target = lm(tokens, lengths).argmax(1)
    print(f"texts={len(texts)} mean_tokens={lengths.float().mean():.1f}")
    for label, max_steps in (("fixed 32 steps", 32), ("32 steps + refinement", text.MAX_STEPS)):
        out: list[text.Attribution] = []

        def run(max_steps: int = max_steps, out: list = out) -> None:
            out.append(
                text.integrated_gradients(lm, tokens, lengths, target, 32, max_steps=max_steps)
            )

        wall, cpu = best_of(run, args.repeat)
        a = out[-1]
        gap = float((a.delta.abs() / a.change.abs().clamp(min=1e-12)).max())
        print(f"ig bilstm 100 tweets ({label}): {wall:.2f}s wall, {cpu:.2f}s cpu (goal <= 10 s) "
              f"ratio_to_goal={wall / 10:.2f} max_gap={100 * gap:.3f}% "
              f"max_steps_used={int(a.steps.max())}")  # fmt: skip


if __name__ == "__main__":
    main()
